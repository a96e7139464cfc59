"""Delivery of spooled batches to one oracle node, in order, at least once.

One ``DeliveryWorker`` thread per node takes the oldest batch queued for its node from the
spool, POSTs its exact spooled bytes to ``{node}/v1/rentals/{rental_id}/batches`` and acts on the answer:

| answer | meaning | action |
|---|---|---|
| 2xx | accepted (our node also answers 200 with status "duplicate" for a batch it already has) | drop from this node's queue |
| 409 without a ``reason``, or reason "duplicate" | the node already has this batch | drop, as delivered |
| 409 sequence_gap naming an ``expected_seq`` this node parked as "stale" | the node now takes old batches that continue its chain (catch-up, docs/protocol.md) | requeue the parked batches from ``expected_seq`` on, resend them first |
| 409 with another ``reason`` (sequence_gap, conflict, prev_hash, gpus_changed) | a chain refusal, not a duplicate | park (below) |
| 408, 425, 429, 5xx, no connection, timeout | the node is down or busy | retry the same batch after a backoff |
| 404 | the node does not know the rental *yet* (it follows chain events with confirmations) or the URL is wrong | retry after a backoff, logged at ERROR once |
| 422 with reason "future" | our clock is ahead of the node's; the batch stops being "future" by itself | retry after a backoff |
| other 4xx | the node refuses this batch for good | log at ERROR with the node's reason, park it, go on |
| anything else (1xx, 3xx) | misconfigured node URL | log at ERROR, retry after a backoff |

The node's JSON error body ``{"detail": ..., "reason": ...}`` is read for ``reason``. Parking never
blocks the queue: the batch stays in the spool (``Spool.parked``) and can be requeued with
``gpurent agent requeue --spool FILE --node URL`` (``Spool.requeue_parked(node)``); the batches
after it will usually be refused by that node too (its chain has a hole), so a park needs an operator.

Only after a batch is dropped from the queue does the next one go, so every node receives the
chain in order. The backoff doubles from ``initial_s`` up to ``max_s``, with up to
``jitter`` x of random spread so that many agents do not hammer a node that comes back all at
the same instant; a ``Retry-After`` (seconds) from the node is honoured up to ``max_s``. It
resets after a success.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, field
from typing import Callable

import httpx

from oracle.agent.spool import Spool, SpooledBatch

log = logging.getLogger(__name__)

RETRYABLE_4XX = frozenset({404, 408, 425, 429})
RETRYABLE_REASONS = frozenset({"future", "unknown_rental", "rate_limited"})
DUPLICATE_REASONS = frozenset({None, "", "duplicate"})


def _reason(response: httpx.Response) -> str | None:
    """The ``reason`` word of a node's JSON error body, if any."""
    try:
        body = response.json()
    except ValueError:
        return None
    reason = body.get("reason") if isinstance(body, dict) else None
    return reason if isinstance(reason, str) else None


@dataclass
class Backoff:
    """Capped exponential backoff with proportional jitter."""

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random)
    _next_s: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError("backoff needs 0 < initial_s <= max_s")
        self._next_s = self.initial_s

    def next_delay(self) -> float:
        """The delay before the next retry; each call doubles the one after (up to the cap)."""
        base = self._next_s
        self._next_s = min(self.max_s, self._next_s * self.factor)
        return min(self.max_s, base * (1 + self.jitter * self.rng.random()))

    def reset(self) -> None:
        self._next_s = self.initial_s


@dataclass
class DeliveryStats:
    delivered: int = 0
    duplicates: int = 0
    parked: int = 0
    failures: int = 0


def normalise_node_url(url: str) -> str:
    return str(url).rstrip("/")


class DeliveryWorker:
    """Sends one node its queue from the spool; run it in a thread (``start()``)."""

    def __init__(
        self,
        node: str,
        spool: Spool,
        *,
        stop: threading.Event,
        backoff: Backoff | None = None,
        request_timeout_s: float = 5.0,
        idle_poll_s: float = 1.0,
        client: httpx.Client | None = None,
        on_delivered: Callable[[str, SpooledBatch], None] | None = None,
    ) -> None:
        self.node = normalise_node_url(node)
        self.url = f"{self.node}/v1/rentals/{{rental_id}}/batches"
        self.spool = spool
        self.stop = stop
        self.backoff = backoff or Backoff()
        self.idle_poll_s = idle_poll_s
        self._client = client or httpx.Client(timeout=request_timeout_s)
        self._owns_client = client is None
        self._wake = threading.Event()
        self._on_delivered = on_delivered
        self.stats = DeliveryStats()
        self._thread: threading.Thread | None = None

    # -- thread control ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.run, name=f"deliver-{self.node}", daemon=True
        )
        self._thread.start()

    def notify(self) -> None:
        """A new batch was spooled."""
        self._wake.set()

    def join(self, timeout: float | None = None) -> None:
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                # Clear before looking, so a notify() after the look is never lost.
                self._wake.clear()
                item = self.spool.next_pending(self.node)
                if item is None:
                    self._wake.wait(self.idle_poll_s)
                    continue
                delay = self.deliver_one(item)
                if delay is not None:
                    self.stop.wait(delay)
        except Exception:
            log.exception("delivery to %s stopped on an unexpected error", self.node)
            raise

    def deliver_one(self, item: SpooledBatch) -> float | None:
        """POST one batch and settle it; return the delay before trying again, if any."""
        label = f"rental {item.rental_id} batch {item.seq}"
        try:
            response = self._client.post(
                self.url.format(rental_id=item.rental_id), content=item.body,
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            return self._retry(item, f"{type(exc).__name__}: {exc}", None)
        status = response.status_code
        reason_word = None if 200 <= status < 300 else _reason(response)
        if 200 <= status < 300 or (status == 409 and reason_word in DUPLICATE_REASONS):
            self.spool.mark_delivered(self.node, item.rental_id, item.seq)
            self.backoff.reset()
            if status == 409:
                self.stats.duplicates += 1
                log.info("%s: %s was already delivered (409)", self.node, label)
            else:
                self.stats.delivered += 1
                log.debug("%s: delivered %s", self.node, label)
            if self._on_delivered is not None:
                self._on_delivered(self.node, item)
            return None
        reason = f"HTTP {status}: {response.text[:300]}"
        if status == 409 and reason_word == "sequence_gap" and self._requeue_stale(item, response):
            return None  # the missing batches go first now (next_pending is in sequence order)
        retryable = status >= 500 or status in RETRYABLE_4XX or reason_word in RETRYABLE_REASONS
        if 400 <= status < 500 and not retryable:
            self.spool.park(self.node, item.rental_id, item.seq, reason)
            self.stats.parked += 1
            log.error(
                "NODE %s REFUSED %s for good (%s); parked in the spool, continuing with the "
                "next batch. Fix the cause, then requeue: gpurent agent requeue --spool %s --node %s",
                self.node, label, reason, self.spool.path, self.node,
            )
            return None
        if not 400 <= status < 600 or (status == 404 and item.attempts == 0):
            log.error("%s answered %s with %s; retrying. Check the node URL and that the node "
                      "knows the rental", self.node, label, reason)
        return self._retry(item, reason, response.headers.get("retry-after"))

    def _requeue_stale(self, item: SpooledBatch, response: httpx.Response) -> bool:
        """Catch-up: the node misses batches from ``expected_seq`` that it refused earlier as
        stale; requeue them (the node takes them now that they continue its chain)."""
        try:
            expected = int(response.json().get("expected_seq"))
        except (ValueError, TypeError, AttributeError):
            return False
        if not 0 <= expected < item.seq:
            return False
        requeued = self.spool.requeue_parked_before(self.node, item.rental_id, expected, "stale")
        if requeued:
            log.info("%s misses rental %s from batch %s (parked as stale): %d batches requeued",
                     self.node, item.rental_id, expected, requeued)
        return requeued > 0

    def _retry(self, item: SpooledBatch, reason: str, retry_after: str | None) -> float:
        self.stats.failures += 1
        delay = self.backoff.next_delay()
        if retry_after is not None and retry_after.strip().isdigit():
            delay = min(self.backoff.max_s, max(delay, float(retry_after)))
        self.spool.record_failure(self.node, item.rental_id, item.seq, reason)
        log_level = logging.WARNING if item.attempts == 0 else logging.INFO
        log.log(
            log_level,
            "%s unavailable for rental %s batch %s (%s); retry in %.1f s",
            self.node, item.rental_id, item.seq, reason, delay,
        )
        return delay
