"""Incremental metering on the node: a rental's meter state advanced from its newest checkpoint.

The pure core (``oracle.metering``) is a fold; this is its thin edge on the node's storage: it
keeps the newest state per rental in memory (bytes, bounded), checkpoints it in SQLite per
(rental, sequence), reads back only the batches since, and takes the periods the challenge
ledger marks unpaid out of the totals (each span metered again from only its own batches).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from oracle.metering import MeterState, MeterTerms, UsageTotals, new_state, totals as totals_of
from oracle.metering.core import feed_checked_values
from oracle.metering.challenges import (
    ChallengeLedger,
    NoChallenges,
    UnpaidUsage,
    exclude_unpaid,
    with_challenge_faults,
)
from oracle.metering.policy import MeteringPolicy
from oracle.node.errors import ReportUnavailable
from oracle.node.storage import NodeStorage


class SequenceUnavailable(ReportUnavailable):
    """The node does not (yet) hold the contiguous batches the asked sequence covers."""


class RentalMeter:
    """Meters rentals from the node's storage, incrementally; thread-safe per rental."""

    def __init__(self, storage: NodeStorage, policy: MeteringPolicy, challenges: ChallengeLedger | None = None,
                 *, cached_rentals: int = 1024) -> None:
        self.storage = storage
        self.policy = policy
        self.challenges: ChallengeLedger = NoChallenges() if challenges is None else challenges
        # The newest meter state per rental: (sequence, terms key, state bytes); tens of KiB
        # each (no samples), at most ``cached_rentals``. SQLite checkpoints back it.
        self._states: OrderedDict[int, tuple[int, str, bytes]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._rental_locks: dict[int, threading.Lock] = {}
        self._cached_rentals = cached_rentals
        self._unpaid_cache: OrderedDict[tuple[int, str, int, int, int | None], UnpaidUsage] = OrderedDict()

    def forget_cached(self) -> None:
        """Drop the in-memory states (the SQLite checkpoints remain)."""
        with self._cache_lock:
            self._states.clear()

    def totals(self, rental_id: int, sequence: int, terms: MeterTerms) -> UsageTotals:
        """The report totals of batches ``0 .. sequence-1`` under ``terms``."""
        with self._rental_lock(rental_id):
            state = self._state_at(rental_id, sequence, terms)
            totals = totals_of(state, terms)
            outcomes = self.challenges.outcomes(rental_id, totals.period_end_ms)
            unpaid = UnpaidUsage()
            spans = outcomes.spans_by_gpu(state.gpus, terms.start_ms, totals.period_end_ms)
            for gpu, gpu_spans in spans.items():
                for start_ms, end_ms in gpu_spans:
                    unpaid = unpaid + self._unpaid_usage(rental_id, sequence, terms, start_ms, end_ms,
                                                         final=end_ms <= totals.period_end_ms, gpu=gpu)
            totals = exclude_unpaid(totals, terms, unpaid, outcomes)
            return with_challenge_faults(totals, self.challenges.faults(rental_id, totals.period_end_ms))

    def _rental_lock(self, rental_id: int) -> threading.Lock:
        with self._cache_lock:
            lock = self._rental_locks.get(rental_id)
            if lock is None:
                lock = self._rental_locks[rental_id] = threading.Lock()
            return lock

    def _base_state(self, rental_id: int, sequence: int, terms: MeterTerms) -> tuple[int, MeterState | None]:
        """The newest known state at or below ``sequence``: cached, else checkpointed, else none."""
        key = terms.checkpoint_key()
        with self._cache_lock:
            cached = self._states.get(rental_id)
        found = None
        if cached is not None and cached[1] == key and cached[0] <= sequence:
            found = (cached[0], cached[2])
        else:
            found = self.storage.checkpoint_at_most(rental_id, sequence, key)
        if found is None:
            return 0, None
        state = MeterState.from_bytes(found[1])
        if terms.end_ms is not None and state.now_ms is not None and state.now_ms > terms.end_ms:
            return 0, None  # metered before the end was known, past it: start over (once)
        return found[0], state

    def _state_at(self, rental_id: int, sequence: int, terms: MeterTerms) -> MeterState:
        """The meter state after batches ``0 .. sequence-1``: from the newest state below, plus
        the batches since (work proportional to them); checkpointed for the next report."""
        base, state = self._base_state(rental_id, sequence, terms)
        done = base
        for _, gpus, values in self.storage.iter_batch_values(rental_id, done, sequence):
            if state is None:
                state = new_state(gpus, terms)
            feed_checked_values(state, terms, self.policy, values)
            done += 1
        if state is None or done < sequence:
            raise SequenceUnavailable(f"rental {rental_id}: batches missing below sequence {sequence}")
        blob = state.to_bytes()
        key = terms.checkpoint_key()
        if done > base:
            self.storage.put_checkpoint(rental_id, sequence, key, blob)
        with self._cache_lock:
            cached = self._states.pop(rental_id, None)
            self._states[rental_id] = (sequence, key, blob) if cached is None or cached[0] <= sequence else cached
            while len(self._states) > self._cached_rentals:
                self._states.popitem(last=False)
        return state

    def _unpaid_usage(self, rental_id: int, sequence: int, terms: MeterTerms, start_ms: int, end_ms: int,
                      final: bool, gpu: int | None = None) -> UnpaidUsage:
        """Usage of the intervals (of GPU ``gpu``, or all) ending in ``[start_ms, end_ms)``,
        metered again from the batches that hold them (bounded by the span, not the rental);
        cached once no later batch can change it (``final``)."""
        cache_key = (rental_id, terms.checkpoint_key(), start_ms, end_ms, gpu)
        with self._cache_lock:
            hit = self._unpaid_cache.get(cache_key)
        if hit is not None:
            return hit
        seqs = self.storage.batch_seqs_overlapping(rental_id, start_ms - self.policy.max_gap_ms, end_ms, sequence)
        state = None
        if seqs is not None:
            for _, gpus, values in self.storage.iter_batch_values(rental_id, seqs[0], seqs[1] + 1):
                if state is None:
                    state = new_state(gpus, terms)
                    state.accrue_from_ms = start_ms
                feed_checked_values(state, terms, self.policy,
                                    [v for v in values if v[1] < end_ms and (gpu is None or v[0] == gpu)])
        usage = UnpaidUsage() if state is None else UnpaidUsage(
            state.available_ms, state.busy_pct_ms // 100, state.energy_mj)
        if final:
            with self._cache_lock:
                self._unpaid_cache[cache_key] = usage
                while len(self._unpaid_cache) > self._cached_rentals:
                    self._unpaid_cache.popitem(last=False)
        return usage
