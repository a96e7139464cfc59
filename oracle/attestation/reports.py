"""Report building: metered ``UsageTotals`` in, EIP-712 structs out. Pure, like metering."""

from __future__ import annotations

from eth_abi import encode
from eth_utils import keccak

from oracle.attestation.eip712 import FaultReport, ReportFieldError, UsageReport
from oracle.metering import SLASHABLE, Fault, UsageTotals

#: ABI layout of a fault's evidence: keccak256(abi.encode(kind, gpu, startMs, endMs, detail)).
FAULT_EVIDENCE_ABI = ("uint8", "uint32", "uint64", "uint64", "string")


def _hash32(value: bytes | str, what: str) -> bytes:
    if isinstance(value, str):
        text = value[2:] if value.startswith(("0x", "0X")) else value
        try:
            value = bytes.fromhex(text)
        except ValueError:
            raise ReportFieldError(f"{what} is not hex: {value!r}") from None
    if not isinstance(value, bytes) or len(value) != 32:
        raise ReportFieldError(f"{what} must be 32 bytes, got {value!r}")
    return value


def build_usage_report(
    rental_id: int,
    sequence: int,
    totals: UsageTotals,
    telemetry_hash: bytes | str,
    signer_set_version: int,
    *,
    challenges_passed: int = 0,
    challenges_failed: int = 0,
) -> UsageReport:
    """The cumulative report for ``sequence`` batches (``periodEnd`` = last sample, floor s).

    ``challenges_passed`` / ``challenges_failed`` are the rental's cumulative proof-of-GPU
    challenge counts judged so far (failed includes missed)."""
    return UsageReport(
        rental_id=rental_id,
        sequence=sequence,
        period_end=totals.period_end_ms // 1000,
        available_gpu_seconds=totals.available_gpu_seconds,
        busy_gpu_seconds=totals.busy_gpu_seconds,
        energy_millijoules=totals.energy_millijoules,
        carbon_milligrams=totals.carbon_milligrams,
        uptime_bps=totals.uptime_bps,
        fault_flags=totals.fault_flags,
        challenges_passed=challenges_passed,
        challenges_failed=challenges_failed,
        telemetry_hash=_hash32(telemetry_hash, "telemetry_hash"),
        signer_set_version=signer_set_version,
    )


def fault_evidence_hash(fault: Fault) -> bytes:
    """keccak256 of the fault's canonical ABI encoding (kind, gpu, start ms, end ms, detail)."""
    return keccak(encode(
        list(FAULT_EVIDENCE_ABI),
        [int(fault.kind), fault.gpu, fault.start_ms, fault.end_ms, fault.detail],
    ))


#: The fault id of the end challenge's fault: outside the metered list (ids 0, 1, ...), because
#: that list may still grow after the end challenge is decided (late batches up to the end).
END_CHALLENGE_FAULT_ID = 2**32 - 1


def _fault_report(rental_id: int, fault_id: int, fault: Fault, signer_set_version: int) -> FaultReport:
    return FaultReport(
        rental_id=rental_id,
        fault_id=fault_id,
        kind=int(fault.kind),
        observed_at=fault.end_ms // 1000,
        evidence_hash=fault_evidence_hash(fault),
        signer_set_version=signer_set_version,
    )


def build_end_fault_report(rental_id: int, fault: Fault, signer_set_version: int) -> FaultReport:
    """The FaultReport of a failed end challenge (``observedAt``: the rental's end second)."""
    return _fault_report(rental_id, END_CHALLENGE_FAULT_ID, fault, signer_set_version)


def build_fault_reports(
    rental_id: int, totals: UsageTotals, signer_set_version: int
) -> list[FaultReport]:
    """One FaultReport per slashable metered fault: ``faultId`` is its index in that list,
    ``observedAt`` its end (s).

    The core already aggregates faults per (kind, slash window), so this is at most one report
    per kind and window. IDLE_POWER_BUSY is a usage flag (the renter's workload): it stays in
    ``faultFlags`` and never becomes a FaultReport.
    """
    slashable = [fault for fault in totals.faults if fault.kind in SLASHABLE]
    return [_fault_report(rental_id, index, fault, signer_set_version) for index, fault in enumerate(slashable)]


__all__ = ["END_CHALLENGE_FAULT_ID", "FAULT_EVIDENCE_ABI", "build_end_fault_report", "build_fault_reports",
           "build_usage_report", "fault_evidence_hash"]
