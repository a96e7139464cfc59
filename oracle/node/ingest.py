"""The node's checks of one telemetry batch against its own view, before and after the append.

Shape and wire format belong to ``oracle.telemetry.batches``; here a parsed batch is checked
against the rental the request named (domain, canonical bytes, physics of the rented model,
freshness, sample density, the agent's signature), turned into a :class:`BatchRecord`, and the
storage outcome of its append turned into a result or the matching refusal.

:class:`BatchIngest` is a part of :class:`~oracle.node.attestor.Attestor` (it uses the
attestor's ``storage``, ``registry``, ``limits``, ``chain_id``, ``market_address`` and clock).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from oracle.errors import BatchVerificationError, ConfigError
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
    SequenceGap,
    StaleBatch,
    TimeRegression,
    UnknownRental,
    WrongAgent,
    WrongDomain,
)
from oracle.node.rentals import Rental, RentalRegistry, meter_terms
from oracle.node.storage import AppendOutcome, AppendStatus, BatchRecord, NodeStorage
from oracle.telemetry.batches import MIN_SAMPLE_INTERVAL_MS, TelemetryBatch
from oracle.telemetry.codec import encode_batch, gpus_key


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


class BatchIngest:
    """Verify a batch, then finish its append (mixed into Attestor)."""

    storage: NodeStorage
    registry: RentalRegistry
    limits: IngestLimits
    chain_id: int
    market_address: str
    _cache_lock: threading.Lock
    _gpu_last: dict[int, tuple[int, dict[int, int]]]

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
