"""Report building from metered totals."""

from __future__ import annotations

import pytest
from eth_abi import decode, encode
from eth_utils import keccak

from oracle.attestation.eip712 import ReportFieldError, UsageReport
from oracle.attestation.reports import (
    FAULT_EVIDENCE_ABI,
    build_fault_reports,
    build_usage_report,
    fault_evidence_hash,
)
from oracle.metering import DEFAULT_POLICY, Fault, FaultKind, MeterTerms, meter_samples
from oracle.metering.core import UsageTotals

from metering_builders import IDLE_MW, LIMIT_MW, LOAD_MW, T0_MS, every_second, gpu_info, steady


@pytest.fixture(scope="module")
def totals():
    """Busy power at 0 % utilization from T0+10 s (COUNTER_PHYSICS), then an 8-s silence
    beyond an SLA tolerating 5 s (DOWNTIME)."""
    samples = steady(every_second(10, LOAD_MW, 99) + every_second(10, LOAD_MW, 0))
    samples += steady(every_second(5, LOAD_MW, 99), t0_ms=samples[-1].t_ms + 8000,
                      energy0_mj=samples[-1].energy_mj)
    terms = MeterTerms(gpu_count=1, power_limit_mw=LIMIT_MW, start_ms=T0_MS, max_gap_ms=5000,
                       grid_intensity_g_per_kwh=481)
    return meter_samples(samples, [gpu_info()], DEFAULT_POLICY, terms=terms)


def test_build_usage_report_maps_the_totals_field_by_field(totals):
    report = build_usage_report(7, 3, totals, b"\x42" * 32, 2)
    assert report == UsageReport(
        rental_id=7, sequence=3, period_end=totals.period_end_ms // 1000,
        available_gpu_seconds=totals.available_gpu_seconds,
        busy_gpu_seconds=totals.busy_gpu_seconds,
        energy_millijoules=totals.energy_millijoules,
        carbon_milligrams=totals.carbon_milligrams, uptime_bps=totals.uptime_bps,
        fault_flags=totals.fault_flags, challenges_passed=0, challenges_failed=0,
        telemetry_hash=b"\x42" * 32, signer_set_version=2)
    assert report.fault_flags == (1 << FaultKind.DOWNTIME) | (1 << FaultKind.COUNTER_PHYSICS)


def test_build_usage_report_carries_the_challenge_counts(totals):
    report = build_usage_report(7, 3, totals, b"\x42" * 32, 2, challenges_passed=9, challenges_failed=2)
    assert (report.challenges_passed, report.challenges_failed) == (9, 2)
    assert report.struct_hash() != build_usage_report(7, 3, totals, b"\x42" * 32, 2).struct_hash()


def test_build_usage_report_accepts_a_hex_telemetry_hash(totals):
    as_hex = build_usage_report(7, 3, totals, "0x" + "42" * 32, 2)
    assert as_hex == build_usage_report(7, 3, totals, b"\x42" * 32, 2)


@pytest.mark.parametrize("bad", [b"\x42" * 31, "0x42", "0x" + "zz" * 32, 42])
def test_build_usage_report_rejects_a_bad_telemetry_hash(totals, bad):
    with pytest.raises(ReportFieldError, match="telemetry_hash"):
        build_usage_report(7, 3, totals, bad, 2)


def test_build_usage_report_rejects_a_sequence_beyond_uint64(totals):
    with pytest.raises(ReportFieldError, match="sequence"):
        build_usage_report(7, 2**64, totals, b"\x42" * 32, 2)


def test_build_fault_reports_gives_one_report_per_fault_indexed_in_order(totals):
    reports = build_fault_reports(7, totals, 2)
    assert [r.fault_id for r in reports] == list(range(len(totals.faults))) == [0, 1]
    for report, fault in zip(reports, totals.faults):
        assert report.kind == int(fault.kind)
        assert report.observed_at == fault.end_ms // 1000
        assert report.evidence_hash == fault_evidence_hash(fault)
        assert (report.rental_id, report.signer_set_version) == (7, 2)


def test_fault_evidence_hash_is_keccak_of_the_abi_encoded_fault(totals):
    fault = totals.faults[0]
    encoded = encode(list(FAULT_EVIDENCE_ABI),
                     [int(fault.kind), fault.gpu, fault.start_ms, fault.end_ms, fault.detail])
    assert fault_evidence_hash(fault) == keccak(encoded)
    assert decode(list(FAULT_EVIDENCE_ABI), encoded)[2] == T0_MS + 10_000


def test_build_fault_reports_is_empty_without_faults():
    clean = meter_samples(steady(every_second(5, LOAD_MW, 99)), [gpu_info()], DEFAULT_POLICY, 0)
    assert build_fault_reports(7, clean, 1) == []


def test_idle_power_busy_is_a_usage_flag_and_never_a_fault_report():
    """Issue 7 item 1: the renter's spinning kernel sets the flag; nothing to slash."""
    spin = meter_samples(steady(every_second(5, LOAD_MW, 99) + every_second(30, IDLE_MW, 99)),
                         [gpu_info()], DEFAULT_POLICY, 0)
    assert spin.fault_flags == 1 << FaultKind.IDLE_POWER_BUSY
    assert build_usage_report(7, 1, spin, b"\x42" * 32, 1).fault_flags == 1 << FaultKind.IDLE_POWER_BUSY
    assert build_fault_reports(7, spin, 1) == []


def test_build_fault_reports_skips_a_usage_flag_even_if_a_fault_record_names_it():
    idle = Fault(FaultKind.IDLE_POWER_BUSY, T0_MS, T0_MS + 3000, "gpu 0: spin", 0)
    down = Fault(FaultKind.DOWNTIME, T0_MS, T0_MS + 9000, "gpu 0: silent", 0)
    totals = UsageTotals(0, 0, 0, 0, 0, 0, T0_MS, T0_MS + 9000, (idle, down),
                         (1 << FaultKind.IDLE_POWER_BUSY) | (1 << FaultKind.DOWNTIME))
    reports = build_fault_reports(7, totals, 1)
    assert [(r.fault_id, r.kind) for r in reports] == [(0, FaultKind.DOWNTIME)]
