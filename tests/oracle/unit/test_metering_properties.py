"""Properties of the metering core over generated telemetry (hypothesis)."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oracle.attestation.eip712 import UsageReport, usage_report_digest
from oracle.attestation.reports import build_fault_reports, build_usage_report
from oracle.metering import DEFAULT_POLICY, UsageTotals, meter_samples

from metering_builders import IDLE_MW, LOAD_MW, T0_MS, gpu_info, sample

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])
CONTRACT = "0x" + "5a" * 20
LIMITS_MW = (700_000, 300_000)
INTERVALS_MS = (100, 250, 1000, 1000, 1000, 2000, 5000, 7000, 30_000, 61_000)
POWERS_MW = (0, 50_000, IDLE_MW, 174_999, 175_000, 400_000, LOAD_MW, 770_001, 900_000)
# What the energy counter does over an interval.
COUNTER_EVENTS = ("honest",) * 6 + ("reload", "fast", "slow", "stuck")


@st.composite
def telemetry(draw, max_gpus: int = 2, max_samples: int = 25, unique_times: bool = True):
    """GPUs and their samples: honest stretches, gaps, reloads, lies about power and counter."""
    gpus = [gpu_info(index, LIMITS_MW[index % 2])
            for index in range(draw(st.integers(1, max_gpus)))]
    samples = []
    for gpu in gpus:
        t_ms = T0_MS + draw(st.integers(0, 3000))
        energy_mj = draw(st.integers(0, 10**9))
        for position in range(draw(st.integers(1, max_samples))):
            interval_ms = draw(st.sampled_from(INTERVALS_MS)) if position else 0
            t_ms += interval_ms
            power_mw = draw(st.sampled_from(POWERS_MW))
            event = draw(st.sampled_from(COUNTER_EVENTS))
            if event == "honest":
                energy_mj += power_mw * interval_ms // 1000 + draw(st.integers(0, 50))
            elif event == "reload":
                energy_mj = draw(st.integers(0, 10**7))
            elif event == "fast":
                energy_mj += 3 * gpu.power_limit_mw * interval_ms // 1000
            elif event == "slow":
                energy_mj += power_mw * interval_ms // 3000
            samples.append(sample(gpu.index, t_ms, energy_mj, power_mw,
                                  draw(st.integers(0, 100))))
    if not unique_times and draw(st.booleans()):
        victim = draw(st.sampled_from(samples))
        samples.append(dataclasses.replace(victim, energy_mj=victim.energy_mj + 1))
    return gpus, samples


def cumulative(totals: UsageTotals) -> dict[str, int]:
    return {
        "available_gpu_milliseconds": totals.available_gpu_milliseconds,
        "available_gpu_seconds": totals.available_gpu_seconds,
        "busy_gpu_milliseconds": totals.busy_gpu_milliseconds,
        "busy_gpu_seconds": totals.busy_gpu_seconds,
        "energy_millijoules": totals.energy_millijoules,
        "integrated_energy_millijoules": totals.integrated_energy_millijoules,
        "carbon_milligrams": totals.carbon_milligrams,
        "period_end_ms": totals.period_end_ms,
        "fault_count": len(totals.faults),
    }


def report_bytes(totals: UsageTotals) -> list[bytes]:
    report = build_usage_report(7, 3, totals, b"\x42" * 32, 1)
    faults = build_fault_reports(7, totals, 1)
    return ([usage_report_digest(report, 31337, CONTRACT), report.struct_hash()]
            + [fault.struct_hash() for fault in faults])


@PROPERTY_SETTINGS
@given(telemetry())
def test_meter_samples_is_monotone_in_appended_samples(generated):
    """Each cumulative field is non-decreasing as later samples arrive, fault flags only gain
    bits, and the fault list only grows at its end: every fault already reported stays
    byte-identical at its index (its faultId), so nodes metering at different moments sign
    the same FaultReports."""
    gpus, samples = generated
    ordered = sorted(samples, key=lambda s: (s.t_ms, s.gpu))
    previous = None
    for end in range(1, len(ordered) + 1):
        totals = meter_samples(ordered[:end], gpus, DEFAULT_POLICY, 481)
        if previous is not None:
            before, now = cumulative(previous), cumulative(totals)
            for name, value in before.items():
                assert now[name] >= value, (name, end)
            assert previous.fault_flags & ~totals.fault_flags == 0
            assert totals.faults[:len(previous.faults)] == previous.faults
        previous = totals


@PROPERTY_SETTINGS
@given(telemetry(unique_times=False), st.randoms(), st.integers(1, 6))
def test_meter_samples_ignores_batch_arrival_order(generated, rnd, batch_count):
    """Shuffled, split into batches that arrive in any order, one batch delivered twice:
    identical totals and identical report bytes."""
    gpus, samples = generated
    expected = meter_samples(samples, gpus, DEFAULT_POLICY, 481)
    shuffled = list(samples)
    rnd.shuffle(shuffled)
    cuts = sorted(rnd.randint(0, len(shuffled)) for _ in range(batch_count - 1))
    batches = [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(shuffled)])]
    rnd.shuffle(batches)
    arrived = [s for batch in batches + [rnd.choice(batches)] for s in batch]
    totals = meter_samples(arrived, gpus, DEFAULT_POLICY, 481)
    assert totals == expected
    assert report_bytes(totals) == report_bytes(expected)


@PROPERTY_SETTINGS
@given(telemetry(max_gpus=1))
def test_meter_samples_driver_reload_never_yields_negative_or_huge_energy(generated):
    """Counter drops (reloads), counters racing ahead: energy stays within what the power limit
    allows over the metered time, and never goes negative."""
    gpus, samples = generated
    totals = meter_samples(samples, gpus, DEFAULT_POLICY, 481)
    limit_mw = gpus[0].power_limit_mw
    policy = DEFAULT_POLICY
    intervals = max(totals.sample_count - 1, 0)
    bound_mj = (limit_mw * (1000 + policy.power_limit_margin_permille)
                * (totals.available_gpu_milliseconds + intervals * policy.counter_slack_ms)
                // 1_000_000)
    assert 0 <= totals.energy_millijoules <= bound_mj
    assert 0 <= totals.carbon_milligrams


@PROPERTY_SETTINGS
@given(telemetry(unique_times=False), st.integers(0, 2000))
def test_build_usage_report_has_no_float_in_signed_output(generated, g_per_kwh):
    gpus, samples = generated
    totals = meter_samples(samples, gpus, DEFAULT_POLICY, g_per_kwh)
    report = build_usage_report(2**200, 2**63, totals, "0x" + "ab" * 32, 2**32 - 1)
    for field in dataclasses.fields(UsageReport):
        value = getattr(report, field.name)
        assert type(value) in (int, bytes), (field.name, value)
    for fault in build_fault_reports(2**200, totals, 1):
        for field in dataclasses.fields(fault):
            assert type(getattr(fault, field.name)) in (int, bytes), field.name
    for field in dataclasses.fields(totals):
        if field.name != "faults":
            assert type(getattr(totals, field.name)) is int, field.name
    assert 0 <= report.uptime_bps <= 10_000
