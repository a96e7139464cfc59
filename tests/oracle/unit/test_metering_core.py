"""The metering core's rules, one synthetic situation at a time."""

from __future__ import annotations

import dataclasses

import pytest

from oracle.errors import ConfigError, MeteringError
from oracle.metering import (
    DEFAULT_POLICY,
    Fault,
    FaultKind,
    MeterTerms,
    UsageTotals,
    meter_samples,
)

from metering_builders import (
    IDLE_MW,
    LIMIT_MW,
    LOAD_MW,
    T0_MS,
    every_second,
    gpu_info,
    sample,
    steady,
)

GPU = gpu_info()


def meter(samples, gpus=(GPU,), policy=DEFAULT_POLICY, g_per_kwh=0, **kwargs) -> UsageTotals:
    return meter_samples(samples, list(gpus), policy, g_per_kwh, **kwargs)


def sla(gpu_count: int = 1, **changes) -> MeterTerms:
    """Rental terms over the builders' GPUs (start T0) with an SLA tolerating 5-s gaps."""
    return MeterTerms(**{"gpu_count": gpu_count, "power_limit_mw": LIMIT_MW, "start_ms": T0_MS,
                         "max_gap_ms": 5000, **changes})


def kinds(totals: UsageTotals) -> list[FaultKind]:
    return [fault.kind for fault in totals.faults]


# --- refusals -------------------------------------------------------------------------------

def test_meter_samples_raises_when_there_are_no_samples():
    with pytest.raises(MeteringError, match="no samples"):
        meter([])


def test_meter_samples_raises_when_there_are_no_gpus():
    with pytest.raises(MeteringError, match="no GPUs"):
        meter(steady(every_second(2, LOAD_MW, 99)), gpus=())


def test_meter_samples_excludes_a_sample_of_a_gpu_that_is_not_rented():
    """Issue 7 item 9: whatever the node accepted can be metered; a stray GPU is left out."""
    totals = meter(steady(every_second(2, LOAD_MW, 99)) + steady(every_second(2, LOAD_MW, 99), gpu=3))
    assert totals.excluded_sample_count == 3
    assert totals.available_gpu_milliseconds == 2000


def test_meter_samples_raises_for_a_gpu_listed_twice():
    with pytest.raises(MeteringError, match="twice"):
        meter(steady(every_second(2, LOAD_MW, 99)), gpus=(GPU, GPU))


@pytest.mark.parametrize("field, value", [
    ("energy_mj", -1), ("power_mw", -5), ("util_gpu_pct", 101), ("util_mem_pct", -1),
    ("t_ms", -1), ("power_mw", 1.5), ("energy_mj", True), ("util_gpu_pct", "99"),
])
def test_meter_samples_raises_for_an_impossible_or_non_integer_reading(field, value):
    samples = steady(every_second(2, LOAD_MW, 99))
    samples[1] = dataclasses.replace(samples[1], **{field: value})
    with pytest.raises(MeteringError):
        meter(samples)


def test_meter_samples_raises_for_a_float_grid_intensity():
    with pytest.raises(MeteringError):
        meter(steady(every_second(2, LOAD_MW, 99)), g_per_kwh=481.0)


def test_meter_samples_excludes_samples_before_the_rental_start_instead_of_raising():
    samples = steady(every_second(2, LOAD_MW, 99))
    totals = meter(samples, rental_start_ms=T0_MS + 1)
    assert totals.excluded_sample_count == 1
    assert totals.available_gpu_milliseconds == 1000
    assert totals.period_start_ms == T0_MS + 1000


@pytest.mark.parametrize("change", [
    {"max_gap_ms": 0}, {"max_gap_ms": 5000.0}, {"energy_tolerance_permille": -1},
    {"idle_busy_min_util_pct": 101}, {"energy_check_window_ms": 0}, {"counter_slack_ms": True},
])
def test_metering_policy_refuses_unsafe_values(change):
    with pytest.raises(ConfigError):
        dataclasses.replace(DEFAULT_POLICY, **change)


# --- available time and downtime -----------------------------------------------------------

def test_meter_samples_counts_intervals_up_to_the_gap_threshold_as_available():
    samples = steady([(1000, LOAD_MW, 99), (5000, LOAD_MW, 99), (1000, LOAD_MW, 99)])
    totals = meter(samples)
    assert totals.available_gpu_milliseconds == 7000
    assert totals.available_gpu_seconds == 7
    assert totals.faults == ()
    assert totals.uptime_bps == 10_000


def test_meter_samples_gap_longer_than_threshold_is_unpaid_and_no_fault_within_the_sla():
    samples = steady([(1000, LOAD_MW, 99), (5001, LOAD_MW, 99), (1000, LOAD_MW, 99)])
    totals = meter(samples)
    assert totals.available_gpu_milliseconds == 2000
    assert totals.busy_gpu_milliseconds == 2000 * 99 // 100
    assert totals.energy_millijoules == 2 * LOAD_MW  # the gap's counter delta is not billed
    assert totals.faults == () and totals.fault_flags == 0
    assert totals.uptime_bps == 2000 * 10_000 // 7001


def test_meter_samples_gap_beyond_the_slas_longest_gap_is_downtime():
    samples = steady([(1000, LOAD_MW, 99), (5001, LOAD_MW, 99), (1000, LOAD_MW, 99)])
    totals = meter(samples, terms=sla())
    assert totals.available_gpu_milliseconds == 2000
    assert totals.faults == (Fault(FaultKind.DOWNTIME, T0_MS + 1000, T0_MS + 6001,
                                   "gpu 0: no telemetry for 5001 ms, longer than the 5000 ms the"
                                   " rental tolerates"),)
    assert totals.fault_flags == 1 << FaultKind.DOWNTIME


def test_meter_samples_rounds_available_down_once_over_the_sum():
    samples = steady([(1500, LOAD_MW, 99), (1999, LOAD_MW, 99)])
    assert meter(samples).available_gpu_seconds == 3  # 3.499 s


def test_meter_samples_silence_after_the_rental_start_is_downtime_beyond_the_sla():
    samples = steady(every_second(3, LOAD_MW, 99), t0_ms=T0_MS + 9000)
    assert meter(samples, rental_start_ms=T0_MS).faults == ()  # 9 s: unpaid, within 300 s
    totals = meter(samples, terms=sla())
    assert kinds(totals) == [FaultKind.DOWNTIME]
    assert (totals.faults[0].start_ms, totals.faults[0].end_ms) == (T0_MS, T0_MS + 9000)
    assert totals.uptime_bps == 3000 * 10_000 // 12_000


def test_meter_samples_single_sample_has_zero_span_and_zero_uptime():
    totals = meter(steady([]))
    assert (totals.available_gpu_seconds, totals.uptime_bps, totals.energy_millijoules) == (0, 0, 0)


# --- busy time and utilization at idle draw ------------------------------------------------

def test_meter_samples_busy_is_utilization_weighted_time_above_idle_draw():
    samples = steady(every_second(10, LOAD_MW, 80) + every_second(10, IDLE_MW, 0))
    totals = meter(samples)
    assert totals.busy_gpu_milliseconds == 8000
    assert totals.busy_gpu_seconds == 8
    assert totals.faults == ()


def test_meter_samples_busy_needs_power_at_the_threshold_share_of_the_limit():
    threshold_mw = LIMIT_MW * DEFAULT_POLICY.busy_min_power_permille_of_limit // 1000
    at = meter(steady(every_second(2, threshold_mw, 50)))
    below = meter(steady(every_second(2, threshold_mw - 1, 40)))
    assert at.busy_gpu_milliseconds == 1000
    assert below.busy_gpu_milliseconds == 0 and below.faults == ()


def test_meter_samples_spin_kernel_at_idle_power_is_not_busy_and_only_flags_usage():
    """Issue 7 item 1: a spinning kernel (the renter's workload) reads 98-99 % utilization at
    idle draw. It is never busy and sets the IDLE_POWER_BUSY usage flag, but files no fault:
    nothing a FaultReport (and so a slash) could be built from."""
    samples = steady(every_second(5, LOAD_MW, 99) + every_second(10, IDLE_MW, 99)
                     + every_second(5, LOAD_MW, 99))
    totals = meter(samples)
    assert totals.busy_gpu_milliseconds == 10_000 * 99 // 100
    assert totals.faults == ()
    assert totals.fault_flags == 1 << FaultKind.IDLE_POWER_BUSY


def test_meter_samples_short_busy_reading_at_idle_power_is_no_fault():
    """Power is a 1-s trailing average: it lags utilization at the start of a load."""
    short = DEFAULT_POLICY.idle_busy_min_duration_ms // 1000 - 1
    totals = meter(steady(every_second(short, IDLE_MW, 99) + every_second(5, LOAD_MW, 99)))
    assert totals.faults == ()


# --- energy, driver reloads, physics --------------------------------------------------------

def test_meter_samples_energy_is_the_sum_of_counter_deltas():
    samples = steady(every_second(4, LOAD_MW, 99) + every_second(4, IDLE_MW, 0))
    totals = meter(samples)
    assert totals.energy_millijoules == samples[-1].energy_mj - samples[0].energy_mj
    assert totals.integrated_energy_millijoules == totals.energy_millijoules


def test_meter_samples_counter_drop_is_a_reload_counted_from_zero():
    samples = steady(every_second(3, LOAD_MW, 99))
    reloaded = sample(0, samples[-1].t_ms + 1000, 400_000, LOAD_MW, 99)  # 400 J since reload
    after = sample(0, reloaded.t_ms + 1000, 400_000 + LOAD_MW, LOAD_MW, 99)
    totals = meter(samples + [reloaded, after])
    assert totals.energy_millijoules == 3 * LOAD_MW + 400_000 + LOAD_MW
    assert FaultKind.COUNTER_PHYSICS not in kinds(totals)


def test_meter_samples_reload_to_an_impossible_reading_is_capped_and_faults():
    samples = steady(every_second(3, LOAD_MW, 99))
    reloaded = sample(0, samples[-1].t_ms + 1000, 10**15, LOAD_MW, 99)
    totals = meter(samples + [reloaded])
    cap_mj = (LIMIT_MW * (1000 + DEFAULT_POLICY.power_limit_margin_permille)
              * (1000 + DEFAULT_POLICY.counter_slack_ms) // 1_000_000)
    # Capped per interval, and in all never more than the GPU at its limit the whole 4 s.
    assert totals.energy_millijoules == min(3 * LOAD_MW + cap_mj, 4 * LIMIT_MW)
    assert kinds(totals) == [FaultKind.COUNTER_PHYSICS]


def test_meter_samples_counter_rising_faster_than_the_limit_is_capped_and_faults():
    samples = steady(every_second(3, LOAD_MW, 99))
    fast = sample(0, samples[-1].t_ms + 1000, samples[-1].energy_mj + 2 * LIMIT_MW, LOAD_MW, 99)
    totals = meter(samples + [fast])
    assert totals.energy_millijoules < 3 * LOAD_MW + 2 * LIMIT_MW
    assert kinds(totals) == [FaultKind.COUNTER_PHYSICS]
    assert "counter" in totals.faults[0].detail


def test_meter_samples_power_above_the_limit_faults_once_per_window_and_bills_at_most_the_limit():
    over = LIMIT_MW * (1000 + DEFAULT_POLICY.power_limit_margin_permille) // 1000 + 1
    totals = meter(steady(every_second(2, LOAD_MW, 99) + every_second(3, over, 99)
                          + every_second(2, LOAD_MW, 99) + every_second(1, over, 99)))
    assert kinds(totals) == [FaultKind.COUNTER_PHYSICS]  # two runs, one window: one fault
    assert totals.faults[0].start_ms == T0_MS + 3000
    assert f"power {over} mW" in totals.faults[0].detail
    assert totals.energy_millijoules == 4 * LOAD_MW + 4 * LIMIT_MW


def test_meter_samples_power_above_the_limit_faults_again_in_the_next_window():
    over = LIMIT_MW * 2
    totals = meter(steady(every_second(130, over, 99)), terms=sla(window_s=60))
    assert kinds(totals) == [FaultKind.COUNTER_PHYSICS] * 3
    assert [f.end_ms for f in totals.faults] == [T0_MS + 1000, T0_MS + 60_000, T0_MS + 120_000]


def test_meter_samples_counter_disagreeing_with_power_is_an_energy_mismatch():
    steps = every_second(200, LOAD_MW, 99)
    samples = steady(steps)
    # Power reads a third lower than the counter says, for the whole rental.
    samples = [dataclasses.replace(s, power_mw=s.power_mw * 2 // 3) for s in samples]
    totals = meter(samples)
    mismatches = [f for f in totals.faults if f.kind == FaultKind.ENERGY_MISMATCH]
    assert len(mismatches) == 1  # consecutive bad windows merge into one fault
    window = DEFAULT_POLICY.energy_check_window_ms
    assert mismatches[0].start_ms % window == 0 and mismatches[0].end_ms % window == 0
    assert totals.fault_flags & (1 << FaultKind.ENERGY_MISMATCH)


def test_meter_samples_does_not_judge_the_open_energy_window():
    window = DEFAULT_POLICY.energy_check_window_ms
    start = (T0_MS // window + 1) * window  # a window that has not closed by the last sample
    samples = steady(every_second(30, LOAD_MW, 99), t0_ms=start)
    samples = [dataclasses.replace(s, power_mw=s.power_mw // 2) for s in samples]
    assert meter(samples).faults == ()


# --- carbon ----------------------------------------------------------------------------------

def test_meter_samples_carbon_is_energy_times_intensity_floored():
    samples = steady(every_second(3600, 100_000, 50))  # 100 W for an hour: 0.1 kWh
    totals = meter(samples, g_per_kwh=481)
    assert totals.energy_millijoules == 360_000_000
    assert totals.carbon_milligrams == 48_100  # 0.1 kWh x 481 g/kWh = 48.1 g
    assert meter(steady(every_second(1, 1, 0)), g_per_kwh=481).carbon_milligrams == 0


# --- arrival order, duplicates, several GPUs -------------------------------------------------

def test_meter_samples_identical_duplicates_count_once():
    samples = steady(every_second(5, LOAD_MW, 99))
    assert meter(samples + samples[1:3]) == meter(samples)


def test_meter_samples_conflicting_duplicates_fault_and_keep_the_smallest():
    samples = steady(every_second(5, LOAD_MW, 99))
    liar = dataclasses.replace(samples[2], energy_mj=samples[2].energy_mj + 5000)
    forward = meter(samples + [liar])
    backward = meter([liar] + samples[::-1])
    assert forward == backward
    assert kinds(forward) == [FaultKind.COUNTER_PHYSICS]
    assert forward.energy_millijoules == meter(samples).energy_millijoules


def test_meter_samples_sums_the_streams_of_several_gpus():
    gpus = (gpu_info(0), gpu_info(1))
    a = steady(every_second(10, LOAD_MW, 100), gpu=0)
    b = steady(every_second(10, IDLE_MW, 0), gpu=1)
    totals = meter(a + b, gpus=gpus)
    assert totals.available_gpu_seconds == 20
    assert totals.busy_gpu_seconds == 10
    assert totals.energy_millijoules == 10 * LOAD_MW + 10 * IDLE_MW
    assert totals.uptime_bps == 10_000
    assert totals.gpu_count == 2


def test_meter_samples_gpu_silent_while_others_report_is_downtime_beyond_the_sla():
    gpus = (gpu_info(0), gpu_info(1))
    a = steady(every_second(20, LOAD_MW, 100), gpu=0)
    b = steady(every_second(3, LOAD_MW, 100), gpu=1)
    totals = meter(a + b, gpus=gpus, terms=sla(gpu_count=2))
    assert kinds(totals) == [FaultKind.DOWNTIME]
    fault = totals.faults[0]
    # Fixed at GPU 0's first sample more than the SLA gap after GPU 1's last one.
    assert (fault.gpu, fault.start_ms, fault.end_ms) == (1, T0_MS + 3000, T0_MS + 9000)
    assert totals.uptime_bps == 23_000 * 10_000 // 40_000


def test_meter_samples_gpu_that_never_reports_is_downtime_beyond_the_sla():
    gpus = (gpu_info(0), gpu_info(1))
    totals = meter(steady(every_second(20, LOAD_MW, 100)), gpus=gpus, terms=sla(gpu_count=2))
    assert [(f.kind, f.gpu) for f in totals.faults] == [(FaultKind.DOWNTIME, 1)]
    assert totals.uptime_bps == 5000


def test_meter_samples_totals_are_integers_only():
    totals = meter(steady(every_second(30, LOAD_MW, 99) + every_second(10, IDLE_MW, 99)),
                   g_per_kwh=481)
    for field in dataclasses.fields(totals):
        value = getattr(totals, field.name)
        if field.name == "faults":
            for fault in value:
                assert type(fault.start_ms) is int and type(fault.end_ms) is int
                assert isinstance(fault.kind, FaultKind) and type(fault.detail) is str
        else:
            assert type(value) is int, field.name


def test_a_report_never_exceeds_what_the_contract_accepts_for_an_active_rental():
    """Issue 7 item 7's bounds: available <= gpuCount x (periodEnd - startedAt) in whole seconds
    (flooring 8 GPUs' 1.999 s once over the sum would give 15 s, not 8), energy <= gpuCount x
    limit x the same seconds."""
    gpus = [gpu_info(i) for i in range(8)]
    samples = [s for i in range(8) for s in steady([(1999, LIMIT_MW, 99)], gpu=i, first_power_mw=LIMIT_MW)]
    totals = meter(samples, gpus=gpus, terms=sla(gpu_count=8))
    assert totals.available_gpu_milliseconds == 8 * 1999
    assert totals.available_gpu_seconds == 8 * 1 and totals.busy_gpu_seconds <= 8
    assert totals.energy_millijoules <= 8 * LIMIT_MW * 1
