"""The node's domain flow: verify a batch -> append it -> meter -> record the report -> sign it.

No HTTP here. Parsing and the wire format belong to ``oracle.telemetry.batches``; metering to
the pure core ``oracle.metering``; report building and digests to ``oracle.attestation``; this
module only checks a batch against the node's own view (the rental registry, its clock, the
stored hash chain) and drives the record-before-sign rule of ``oracle.node.storage``.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Sequence

from oracle.errors import BatchVerificationError, ConfigError, SigningError
from oracle.metering.challenges import ChallengeLedger
from oracle.metering.policy import DEFAULT_POLICY, MeteringPolicy
from oracle.node.errors import (
    BadSignature,
    BodyTooLarge,
    BrokenHashChain,
    ConflictingBatch,
    FutureBatch,
    GpuSetChanged,
    ImplausibleBatch,
    MalformedBatch,
    PaddedBatch,
    ReportConflict,
    ReportUnavailable,
    SequenceGap,
    StaleBatch,
    TimeRegression,
    UnknownRental,
    WrongAgent,
    WrongDomain,
)
from oracle.node.metering import RentalMeter, SequenceUnavailable  # noqa: F401  (re-exported)
from oracle.node.rentals import Rental, RentalRegistry, meter_terms
from oracle.node.storage import AppendOutcome, AppendStatus, BatchRecord, NodeStorage
from oracle.telemetry.batches import MIN_SAMPLE_INTERVAL_MS, TelemetryBatch, address_of
from oracle.telemetry.codec import encode_batch, gpus_key

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


@dataclass(frozen=True, slots=True)
class IngestLimits:
    max_body_bytes: int = 1 << 20
    max_samples_per_batch: int = 4096
    max_clock_skew_ms: int = 10_000
    max_batch_age_ms: int = 24 * 3600 * 1000
    #: Power above this many times the board limit is impossible (not merely a fault).
    max_power_factor_of_limit: int = 2


@dataclass(frozen=True, slots=True)
class VerifiedBatch:
    batch: TelemetryBatch
    rental: Rental
    record: BatchRecord


@dataclass(frozen=True, slots=True)
class IngestResult:
    status: str  # "accepted" or "duplicate"
    rental_id: int
    batch_seq: int
    batch_hash: bytes
    next_seq: int
    newest_sample_ms: int


@dataclass(frozen=True, slots=True)
class SignedReport:
    """A usage or fault report as recorded and signed by this node."""

    report: Any  # oracle.attestation.eip712.UsageReport or FaultReport
    digest: bytes
    signature: bytes
    signer: str
    newly_signed: bool = True  # False: the signature was made earlier and is returned again


@dataclass(frozen=True, slots=True)
class FaultOutcome:
    fault_id: int
    signed: SignedReport | None
    refused: str | None  # why the node will not sign this fault report


def report_fields(report: Any) -> dict[str, Any]:
    """A report dataclass as JSON-ready fields: ints stay ints, bytes become 0x-hex."""
    out = {}
    for name, value in asdict(report).items():
        if isinstance(value, (bytes, bytearray)):
            value = "0x" + bytes(value).hex()
        elif isinstance(value, int) and not isinstance(value, bool):
            value = int(value)  # IntEnum -> int
        else:
            raise SigningError(f"report field {name}={value!r} is neither an integer nor bytes")
        out[name] = value
    return out


def report_bytes(report: Any) -> bytes:
    """The bytes recorded for a report: canonical JSON of its fields (integers and hex only)."""
    return json.dumps(report_fields(report), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def report_from_bytes(cls: type, body: bytes) -> Any:
    """Rebuild a report dataclass from :func:`report_bytes` (bytes fields from 0x-hex)."""
    data = json.loads(body)
    values = {}
    for field in fields(cls):
        value = data[field.name]
        values[field.name] = bytes.fromhex(value[2:]) if isinstance(value, str) and value.startswith("0x") else value
    return cls(**values)


def _challenge_fields(totals: Any) -> dict[str, int]:
    """challenges_passed/failed for build_usage_report, once the report has those fields."""
    from oracle.attestation.reports import build_usage_report

    if "challenges_passed" not in inspect.signature(build_usage_report).parameters:
        return {}
    return {"challenges_passed": totals.challenges_passed, "challenges_failed": totals.challenges_failed}


def _unix_ms() -> int:
    return time.time_ns() // 1_000_000


class Attestor:
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

    # -- ingest -----------------------------------------------------------------------------

    def verify(self, body: bytes, now_ms: int, rental: Rental | None = None) -> VerifiedBatch:
        """Everything that does not need the stored chain: shape, domain, physics, freshness, signature.

        ``rental``: the rental the request named (the HTTP route resolves it from the path before
        reading the body); the batch must be for it.
        """
        if len(body) > self.limits.max_body_bytes:
            raise BodyTooLarge(f"batch body is {len(body)} bytes, the limit is {self.limits.max_body_bytes}",
                               limit_bytes=self.limits.max_body_bytes)
        try:
            batch = TelemetryBatch.from_wire_bytes(body)
        except BatchVerificationError as exc:
            raise MalformedBatch(str(exc)) from None
        except RecursionError:
            raise MalformedBatch("batch body is nested too deeply to be a telemetry batch") from None
        if batch.chain_id != self.chain_id or batch.market != self.market_address:
            raise WrongDomain(f"batch is for chain {batch.chain_id} market {batch.market}; this node serves "
                              f"chain {self.chain_id} market {self.market_address}")
        if rental is not None and batch.rental_id != rental.rental_id:
            raise MalformedBatch(f"batch is for rental {batch.rental_id}, posted to rental {rental.rental_id}")
        rental = rental or self.registry.get(batch.rental_id)
        if rental is None:
            raise UnknownRental(f"this node meters no rental {batch.rental_id}", rental_id=batch.rental_id)
        wire = batch.to_wire_bytes()
        if wire != body:  # what is stored is the canonical form: padding would be free storage
            raise MalformedBatch(f"batch body is not its canonical JSON ({len(body)} bytes, canonical "
                                 f"{len(wire)}): sorted keys, no whitespace, lowercase hex")
        self._check_physics(batch, rental)
        self._check_freshness(batch, rental, now_ms)
        self._check_density(batch)
        try:
            recovered = batch.recover_agent()
        except BatchVerificationError as exc:
            raise BadSignature(f"bad batch signature: {exc}") from None
        if recovered != batch.agent:
            raise BadSignature(f"signature recovers to {recovered}, not to the batch's agent {batch.agent}")
        if recovered.lower() != rental.agent.lower():
            raise WrongAgent(f"batch signed by {recovered}, but rental {rental.rental_id}'s agent is {rental.agent}")
        samples = batch.samples
        record = BatchRecord(
            rental_id=batch.rental_id,
            batch_seq=batch.batch_seq,
            batch_hash=batch.batch_hash(),
            prev_hash=batch.prev_hash,
            first_t_ms=samples[0].t_ms,
            last_t_ms=samples[-1].t_ms,
            gpus_key=gpus_key(batch.gpus),
            body=encode_batch(batch),
            received_ms=now_ms,
        )
        return VerifiedBatch(batch, rental, record)

    def _check_physics(self, batch: TelemetryBatch, rental: Rental) -> None:
        if len(batch.samples) > self.limits.max_samples_per_batch:
            raise ImplausibleBatch(f"{len(batch.samples)} samples in one batch, the limit is "
                                   f"{self.limits.max_samples_per_batch}")
        if len(batch.gpus) > rental.gpu_count:
            raise ImplausibleBatch(f"batch lists {len(batch.gpus)} GPUs, rental {rental.rental_id} has "
                                   f"{rental.gpu_count}")
        # The bound comes from the rented model (issue 8), never from the batch's declared limit.
        try:
            limit_mw = meter_terms(rental).power_limit_mw
        except ConfigError:
            limit_mw = min(g.power_limit_mw for g in batch.gpus)  # a rental that cannot be metered anyway
        ceiling_mw = limit_mw * self.limits.max_power_factor_of_limit
        for i, sample in enumerate(batch.samples):
            if sample.power_mw > ceiling_mw:
                raise ImplausibleBatch(
                    f"samples[{i}].power_mw={sample.power_mw} is beyond {self.limits.max_power_factor_of_limit}x "
                    f"the board limit of the rented GPU model ({limit_mw} mW)"
                )

    def _head_gpu_times(self, rental_id: int, head_seq: int) -> dict[int, int]:
        """Each GPU's last sample time in the rental's stored batch ``head_seq`` (cached per rental)."""
        with self._cache_lock:
            cached = self._gpu_last.get(rental_id)
        if cached is not None and cached[0] == head_seq:
            return cached[1]
        rows = list(self.storage.iter_batch_objects(rental_id, head_seq, head_seq + 1))
        times: dict[int, int] = {}
        if rows:
            for sample in rows[0][2].samples:
                times[sample.gpu] = sample.t_ms
        with self._cache_lock:
            self._gpu_last[rental_id] = (head_seq, times)
            while len(self._gpu_last) > 100_000:
                self._gpu_last.pop(next(iter(self._gpu_last)))
        return times

    def _check_density(self, batch: TelemetryBatch) -> None:
        """No sample of a GPU within MIN_SAMPLE_INTERVAL_MS of its previous one, stored or in the batch:
        duplicates and padding samples carry no GPU time, so they are refused, not stored."""
        next_seq, _ = self.storage.batch_head(batch.rental_id)
        if batch.batch_seq != next_seq:
            return  # a duplicate or a gap: storage answers it, nothing is stored
        last = dict(self._head_gpu_times(batch.rental_id, next_seq - 1)) if next_seq else {}
        for i, sample in enumerate(batch.samples):
            previous = last.get(sample.gpu)
            if previous is not None and sample.t_ms < previous + MIN_SAMPLE_INTERVAL_MS:
                raise PaddedBatch(
                    f"samples[{i}] of GPU {sample.gpu} at t_ms={sample.t_ms} is within {MIN_SAMPLE_INTERVAL_MS} ms "
                    f"of its previous sample at {previous} (duplicate or padding samples are refused)")
            last[sample.gpu] = sample.t_ms

    def _check_freshness(self, batch: TelemetryBatch, rental: Rental, now_ms: int) -> None:
        newest = batch.samples[-1].t_ms
        oldest = batch.samples[0].t_ms
        skew = self.limits.max_clock_skew_ms
        if newest > now_ms + skew:
            raise FutureBatch(f"sample at t_ms={newest} is {newest - now_ms} ms ahead of this node's clock "
                              f"(allowed skew {skew} ms)", node_time_ms=now_ms)
        if newest < now_ms - self.limits.max_batch_age_ms and not self._catching_up(batch):
            raise StaleBatch(f"newest sample at t_ms={newest} is {now_ms - newest} ms old (limit "
                             f"{self.limits.max_batch_age_ms} ms) and is not the next batch this node "
                             f"needs", node_time_ms=now_ms)
        if oldest < rental.start_ms - skew:
            raise StaleBatch(f"sample at t_ms={oldest} is before rental {rental.rental_id} started "
                             f"({rental.start_ms})")

    def _catching_up(self, batch: TelemetryBatch) -> bool:
        """Catch-up (docs/protocol.md): an old batch is still taken when it is exactly the next
        batch of the rental's stored hash chain (a node that was away is being re-sent the
        agent's spool). Anything else old stays refused as stale."""
        next_seq, head_hash = self.storage.batch_head(batch.rental_id)
        if batch.batch_seq < next_seq:  # a re-send of a batch already held answers "duplicate"
            return self.storage.batch_hash(batch.rental_id, batch.batch_seq) == batch.batch_hash()
        return batch.batch_seq == next_seq and batch.prev_hash == (head_hash or bytes(32))

    def finish(self, verified: VerifiedBatch, outcome: AppendOutcome) -> IngestResult:
        """Turn the storage outcome into a result or the matching refusal."""
        batch = verified.batch
        status = outcome.status
        if status is AppendStatus.APPENDED:
            times: dict[int, int] = {}
            for sample in batch.samples:
                times[sample.gpu] = sample.t_ms
            with self._cache_lock:
                self._gpu_last[batch.rental_id] = (batch.batch_seq, times)
        if status in (AppendStatus.APPENDED, AppendStatus.DUPLICATE):
            return IngestResult(
                "accepted" if status is AppendStatus.APPENDED else "duplicate",
                batch.rental_id, batch.batch_seq, verified.record.batch_hash, outcome.next_seq,
                verified.record.last_t_ms,
            )
        where = f"rental {batch.rental_id} batch {batch.batch_seq}"
        if status is AppendStatus.GAP:
            raise SequenceGap(f"{where}: expected batch_seq {outcome.next_seq}", expected_seq=outcome.next_seq)
        if status is AppendStatus.CONFLICT:
            raise ConflictingBatch(f"{where}: a different batch is already stored at this sequence",
                                   expected_seq=outcome.next_seq)
        head = "0x" + (outcome.head_hash or bytes(32)).hex()
        if status is AppendStatus.BAD_PREV_HASH:
            raise BrokenHashChain(f"{where}: prev_hash does not match the stored batch {outcome.next_seq - 1}",
                                  expected_prev_hash=head)
        if status is AppendStatus.TIME_REGRESSION:
            raise TimeRegression(f"{where}: samples start before the previous batch's last sample")
        if status is AppendStatus.GPUS_CHANGED:
            raise GpuSetChanged(f"{where}: the GPU list differs from the rental's earlier batches")
        raise AssertionError(status)

    def ingest(self, body: bytes, now_ms: int | None = None) -> IngestResult:
        """Verify and durably append one batch (synchronous; the HTTP route group-commits)."""
        now_ms = self.now_ms() if now_ms is None else now_ms
        verified = self.verify(body, now_ms)
        return self.finish(verified, self.storage.append_batches([verified.record])[0])

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
                                        **_challenge_fields(totals))
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
        from oracle.attestation.reports import build_fault_reports

        version = self.signer_set_version if version is None else version
        stored = self.storage.recorded_reports("fault", rental_id, version, from_id, limit)
        if len(stored) == limit and all(r.signature is not None for r in stored) and \
                [r.key for r in stored] == list(range(from_id, from_id + limit)):
            return [FaultOutcome(r.key, SignedReport(report_from_bytes(FaultReport, r.body), r.digest, r.signature,
                                                     self.address, newly_signed=False), None) for r in stored]
        _, _, totals, _ = self.meter(rental_id)
        outcomes = []
        for report in build_fault_reports(rental_id, totals, version)[from_id:from_id + limit]:
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
