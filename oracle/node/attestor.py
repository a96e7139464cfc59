"""The node's domain flow: verify a batch -> append it -> meter -> record the report -> sign it.

No HTTP here. Parsing and the wire format belong to ``oracle.telemetry.batches``; metering to
the pure core ``oracle.metering``; report building and digests to ``oracle.attestation``. The
checks of a batch against the node's own view (the rental registry, its clock, the stored hash
chain) are :mod:`oracle.node.ingest`; this module meters and drives the record-before-sign rule
of ``oracle.node.storage`` (the recorded forms of reports: :mod:`oracle.node.signed_reports`).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any, Callable, Sequence

from oracle.errors import ConfigError, SigningError
from oracle.metering.challenges import ChallengeLedger
from oracle.metering.policy import DEFAULT_POLICY, MeteringPolicy
from oracle.node.errors import ReportConflict, ReportUnavailable
from oracle.node.ingest import BatchIngest, IngestLimits, IngestResult, VerifiedBatch
from oracle.node.metering import RentalMeter, SequenceUnavailable
from oracle.node.rentals import Rental, RentalRegistry, meter_terms
from oracle.node.signed_reports import (
    FaultOutcome,
    SignedReport,
    challenge_fields,
    report_bytes,
    report_fields,
    report_from_bytes,
)
from oracle.node.storage import NodeStorage
from oracle.telemetry.batches import address_of

# Re-exported: callers import these from here.
__all__ = [
    "Attestor", "FaultOutcome", "IngestLimits", "IngestResult", "SIGNING_FAULT_POINTS", "SequenceUnavailable",
    "SignedReport", "VerifiedBatch", "report_bytes", "report_fields", "report_from_bytes",
]

# Crash points of the signing path (test-only, dev mode; ``GPURENT_NODE_FAULT``), in path order:
# metered but nothing recorded; recorded, not signed; signed in memory, signature not stored;
# signature stored, not yet returned. tests/oracle/crash/test_signing_crash_points.py kills a
# node at each and checks that no (rental, sequence) ever gets two different signatures.
FAULT_KILL_BEFORE_RECORD = "kill_before_record"
FAULT_KILL_AFTER_RECORD = "kill_after_record"
FAULT_KILL_AFTER_SIGN = "kill_after_sign"
FAULT_KILL_AFTER_STORE = "kill_after_store"
SIGNING_FAULT_POINTS = (FAULT_KILL_BEFORE_RECORD, FAULT_KILL_AFTER_RECORD, FAULT_KILL_AFTER_SIGN,
                        FAULT_KILL_AFTER_STORE)


def _unix_ms() -> int:
    return time.time_ns() // 1_000_000


class Attestor(BatchIngest):
    """One node's view: verifies batches, meters them, records and signs reports."""

    def __init__(
        self,
        *,
        storage: NodeStorage,
        registry: RentalRegistry,
        node_key: bytes,
        chain_id: int,
        market_address: str,
        signer_set_version: int,
        limits: IngestLimits = IngestLimits(),
        policy: MeteringPolicy = DEFAULT_POLICY,
        clock: Callable[[], int] = _unix_ms,
        fault: str | None = None,
        cached_rentals: int = 1024,
        challenges: ChallengeLedger | None = None,
    ) -> None:
        if len(node_key) != 32:
            raise SigningError("the node key is 32 bytes")
        self.storage = storage
        self.registry = registry
        self._node_key = node_key
        self.address = address_of(node_key)
        self.chain_id = chain_id
        self.market_address = market_address
        self.signer_set_version = signer_set_version
        self.limits = limits
        self.policy = policy
        self.now_ms = clock
        self._fault = fault
        self._cache_lock = threading.Lock()
        self._gpu_last: dict[int, tuple[int, dict[int, int]]] = {}  # rental -> (head seq, GPU -> last t_ms)
        self.metering = RentalMeter(storage, policy, challenges, cached_rentals=cached_rentals)

    @property
    def challenges(self) -> ChallengeLedger:
        """Metering's proof-of-GPU hook (settable: the node's challenge service plugs in)."""
        return self.metering.challenges

    @challenges.setter
    def challenges(self, ledger: ChallengeLedger) -> None:
        self.metering.challenges = ledger

    # -- metering ---------------------------------------------------------------------------

    def contiguous_batches(self, rental_id: int) -> int:
        return self.storage.batch_head(rental_id)[0]

    def meter(self, rental_id: int, sequence: int | None = None) -> tuple[Rental, int, Any, bytes]:
        """(rental, sequence, UsageTotals, telemetry hash) over batches ``0 .. sequence-1``.

        Incremental (:class:`~oracle.node.metering.RentalMeter`): the rental's meter state is
        advanced from its newest checkpoint at or below ``sequence``; periods the challenge
        ledger marks unpaid are taken out.
        """
        sequence = self._sequence(rental_id, sequence)
        rental = self.registry.get(rental_id)
        try:
            terms = meter_terms(rental)
        except ConfigError as exc:
            raise ReportUnavailable(str(exc)) from None
        totals = self.metering.totals(rental_id, sequence, terms)
        return rental, sequence, totals, self.storage.batch_hash(rental_id, sequence - 1)

    # -- reports: record, then sign ---------------------------------------------------------

    def _sign(self, digest: bytes) -> bytes:
        from oracle.attestation.signing import sign_digest

        return sign_digest(self._node_key, digest)

    def _sign_with_fault_point(self, digest: bytes) -> bytes:
        """:meth:`_sign`, then the crash point between making a signature and storing it."""
        signature = self._sign(digest)
        self._fault_point(FAULT_KILL_AFTER_SIGN)
        return signature

    def _fault_point(self, name: str) -> None:
        if self._fault == name:  # test-only crash injection (settings refuse it outside dev mode)
            os.kill(os.getpid(), signal.SIGKILL)

    def record_and_sign(self, kind: str, rental_id: int, key: int, report: Any, digest: bytes) -> SignedReport:
        """The one path to a signature: commit the report durably, then sign the recorded digest.

        The record's key includes the report's signer-set version. A report already recorded
        and signed is returned from storage without a write.
        """
        now_ms = self.now_ms()
        version = int(report.signer_set_version)
        self._fault_point(FAULT_KILL_BEFORE_RECORD)
        recorded = self.storage.record_report(kind, rental_id, key, digest, report_bytes(report), now_ms, version)
        if recorded.signature is not None:
            return SignedReport(report, digest, recorded.signature, self.address, newly_signed=False)
        self._fault_point(FAULT_KILL_AFTER_RECORD)
        signature = self.storage.sign_recorded(kind, rental_id, key, digest, self._sign_with_fault_point, now_ms,
                                               version)
        self._fault_point(FAULT_KILL_AFTER_STORE)
        return SignedReport(report, digest, signature, self.address, newly_signed=True)

    def _sequence(self, rental_id: int, sequence: int | None) -> int:
        if self.registry.get(rental_id) is None:
            raise ReportUnavailable(f"this node meters no rental {rental_id}")
        available = self.contiguous_batches(rental_id)
        sequence = available if sequence is None else sequence
        if sequence < 1:
            raise SequenceUnavailable(f"rental {rental_id}: no telemetry batches yet")
        if sequence > available:
            raise SequenceUnavailable(f"rental {rental_id}: asked for sequence {sequence}, this node holds "
                                      f"{available} contiguous batches")
        return sequence

    def usage_report(self, rental_id: int, sequence: int | None = None, version: int | None = None) -> SignedReport:
        """The signed usage report of batches ``0 .. sequence-1`` for signer set ``version``
        (default: the node's configured one).

        A sequence already recorded for that version is served from storage (no metering). A
        sequence recorded for another version (a signer-set rotation) is re-signed with the
        recorded content unchanged, only ``signer_set_version`` differs: the node never signs two
        different contents for one rental and sequence, and an ended rental's last reports stay
        signable by the new set.
        """
        from dataclasses import replace

        from oracle.attestation.eip712 import UsageReport, usage_report_digest
        from oracle.attestation.reports import build_usage_report

        version = self.signer_set_version if version is None else version
        sequence = self._sequence(rental_id, sequence)
        recorded = self.storage.get_report("usage", rental_id, sequence, version)
        if recorded is not None and recorded.signature is not None:
            return SignedReport(report_from_bytes(UsageReport, recorded.body), recorded.digest, recorded.signature,
                                self.address, newly_signed=False)
        prior = recorded or self.storage.get_report("usage", rental_id, sequence)
        if prior is not None:
            report = replace(report_from_bytes(UsageReport, prior.body), signer_set_version=version)
        else:
            _, sequence, totals, telemetry_hash = self.meter(rental_id, sequence)
            report = build_usage_report(rental_id, sequence, totals, telemetry_hash, version,
                                        **challenge_fields(totals))
        digest = usage_report_digest(report, self.chain_id, self.market_address)
        return self.record_and_sign("usage", rental_id, sequence, report, digest)

    def fault_reports(self, rental_id: int, from_id: int = 0, limit: int = 256,
                      version: int | None = None) -> list[FaultOutcome]:
        """Signed fault reports of fault ids ``from_id .. from_id+limit-1`` (a page).

        A page the node has already recorded and signed in full is served from storage without
        metering; otherwise the rental is metered and only the page's reports are recorded and
        signed (the rest cost nothing).
        """
        from oracle.attestation.eip712 import FaultReport, fault_report_digest
        from oracle.attestation.reports import END_CHALLENGE_FAULT_ID, build_end_fault_report, build_fault_reports

        version = self.signer_set_version if version is None else version
        stored = self.storage.recorded_reports("fault", rental_id, version, from_id, limit)
        if len(stored) == limit and all(r.signature is not None for r in stored) and \
                [r.key for r in stored] == list(range(from_id, from_id + limit)):
            return [FaultOutcome(r.key, SignedReport(report_from_bytes(FaultReport, r.body), r.digest, r.signature,
                                                     self.address, newly_signed=False), None) for r in stored]
        reports = []
        if from_id < END_CHALLENGE_FAULT_ID:
            _, _, totals, _ = self.meter(rental_id)
            reports = build_fault_reports(rental_id, totals, version)[from_id:from_id + limit]
        end_fault = self.challenges.end_fault(rental_id) if from_id + limit > END_CHALLENGE_FAULT_ID else None
        if end_fault is not None:
            reports.append(build_end_fault_report(rental_id, end_fault, version))
        outcomes = []
        for report in reports:
            digest = fault_report_digest(report, self.chain_id, self.market_address)
            try:
                signed = self.record_and_sign("fault", rental_id, report.fault_id, report, digest)
            except ReportConflict as exc:
                outcomes.append(FaultOutcome(report.fault_id, None, str(exc)))
            else:
                outcomes.append(FaultOutcome(report.fault_id, signed, None))
        return outcomes

    def sign_usage_batch(self, items: Sequence[tuple[int, int, bytes]]) -> tuple[bytes, bytes, list]:
        """Sign the UsageReportBatch of ``(rental_id, sequence, digest)`` items, in the given order.

        Only reports this node itself recorded, with the identical digest, are accepted; the batch
        digest is a pure function of them, so it needs no record of its own.
        """
        from oracle.attestation.eip712 import UsageReport, usage_batch_digest

        if not items:
            raise SigningError("an empty report batch")
        seen_rentals = set()
        reports = []
        for rental_id, sequence, digest in items:
            if rental_id in seen_rentals:
                raise SigningError(f"rental {rental_id} appears twice in the batch")
            seen_rentals.add(rental_id)
            recorded = self.storage.report_with_digest("usage", rental_id, sequence, digest)
            if recorded is None:
                recorded = self.storage.get_report("usage", rental_id, sequence)
            if recorded is None:
                raise ReportUnavailable(f"this node has no report for rental {rental_id} sequence {sequence}; "
                                        f"ask GET /v1/rentals/{rental_id}/report?sequence={sequence} first")
            if recorded.digest != digest:
                raise ReportConflict(f"rental {rental_id} sequence {sequence}: this node recorded digest "
                                     f"0x{recorded.digest.hex()}, the batch proposes 0x{digest.hex()}")
            reports.append(report_from_bytes(UsageReport, recorded.body))
        batch_digest = usage_batch_digest(reports, self.chain_id, self.market_address)
        return batch_digest, self._sign(batch_digest), reports
