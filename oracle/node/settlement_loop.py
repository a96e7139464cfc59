"""The node's settlement rounds: which rentals are due, in what order, and the loop that runs them.

:class:`DueRentals` picks a round's rentals:

- idle rentals are skipped (with ``local_head``: nothing new held since the last look, see below);
- with a :class:`~oracle.node.settle_policy.SettlePolicy`, an Active rental is due only when what
  it owes is worth the gas or its maximum interval has passed (an Ended rental is always due: its
  final report must settle within the grace);
- rotation: the due rentals are ordered by when a round last looked at them (never first, then
  oldest), and at most ``max_per_round`` go into one round; the rest go first next round, so no
  rental starves however many are due.

:class:`SettlementLoop` runs rounds every ``interval_s`` in a thread: one
:meth:`~oracle.node.aggregator.Aggregator.settle_batch` (split into transactions there) and the
fault submissions of the round's rentals (each bounded per rental by the aggregator).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable

from oracle.chain.background import BackgroundLoop
from oracle.errors import ChainError
from oracle.node.aggregator import Aggregator
from oracle.node.quorum import Outcome
from oracle.node.settle_policy import RentalEconomics, SettlePolicy
from oracle.node.slashing import DECIDED

log = logging.getLogger(__name__)


class DueRentals:
    """The settleable rentals a settlement round should look at, so that an idle node stays cheap.

    With ``local_head`` (rental id -> contiguous batches this node holds) a rental is skipped
    while the last round that looked at it is less than ``recheck_s`` old and nothing changed
    since: the chain had settled everything this node holds, or that round found nothing new
    and this node has received no batch since. A skipped rental costs no RPC and no peer
    request; it is looked at again when a batch arrives, or after ``recheck_s``. When that round
    found nothing new because the peers' quorum was behind the batches this node holds (a peer
    had not yet received the last batch), it is looked at again after ``lag_retry_s``, doubled
    at each further such round up to ``recheck_s``: peers that catch up a moment later are
    settled a round later, peers that never do cost little. Without ``local_head`` every
    settleable rental is due every round.

    ``policy`` with ``economics`` (rental id -> :class:`RentalEconomics` or None) and
    ``gas_price_wei`` (the node's estimate, read once per round) adds the value rule;
    ``is_ended`` exempts Ended rentals from it. ``last_settled`` holds each rental's last
    settled sequence on chain as last seen (for metrics), ``last_settled_at`` its time.
    """

    def __init__(
        self,
        settleable: Callable[[], Iterable[int]],
        local_head: Callable[[int], int] | None = None,
        *,
        recheck_s: float = 600.0,
        lag_retry_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        policy: SettlePolicy | None = None,
        economics: Callable[[int], RentalEconomics | None] | None = None,
        gas_price_wei: Callable[[], int] | None = None,
        is_ended: Callable[[int], bool] = lambda rental_id: False,
        wall_clock: Callable[[], float] = time.time,
        max_per_round: int | None = None,
    ) -> None:
        self.settleable = settleable
        self.local_head = local_head
        self.recheck_s = recheck_s
        self.lag_retry_s = lag_retry_s
        self._clock = clock
        self.policy = policy
        self.economics = economics
        self.gas_price_wei = gas_price_wei
        self.is_ended = is_ended
        self._wall = wall_clock
        self.max_per_round = max_per_round
        self._looked: dict[int, tuple[int, str, int | None, float]] = {}  # head, status, chain seq, when
        self._lagging: dict[int, int] = {}  # rental id -> rounds in a row the peers' quorum was behind this node
        self._heads: dict[int, int] = {}
        self._attempted: dict[int, float] = {}  # rental id -> when a round last took it (rotation)
        self.last_settled: dict[int, int] = {}
        self.last_settled_at: dict[int, int] = {}
        self.deferred_by_value = 0  # rentals a round left out because settling was not worth the gas yet

    def _forget(self, live: set[int]) -> None:
        for table in (self.last_settled, self._looked, self._heads, self._attempted, self.last_settled_at,
                      self._lagging):
            for gone in [r for r in table if r not in live]:
                table.pop(gone, None)

    def _idle(self, rental_id: int, now: float) -> bool:
        if self.local_head is None:
            return False
        head = self.local_head(rental_id)
        self._heads[rental_id] = head
        looked = self._looked.get(rental_id)
        if looked is None or now - looked[3] >= self.recheck_s:
            return False
        last_head, status, chain_sequence, when = looked
        if chain_sequence is not None and chain_sequence >= head:
            return True  # everything this node holds is settled
        if status != "nothing_new" or last_head != head:
            return False  # a new batch since
        lagging = self._lagging.get(rental_id, 0)
        if lagging:
            return now - when < min(self.recheck_s, self.lag_retry_s * 2 ** (lagging - 1))
        return True

    def _gas_price(self) -> int | None:
        if self.policy is None or self.gas_price_wei is None:
            return None
        try:
            return int(self.gas_price_wei())
        except (ChainError, OSError, ValueError) as exc:
            log.warning("gas price unavailable (%s); settling by interval only this round", exc)
            return None

    def _worth_it(self, rental_id: int, now_s: int, gas_price: int | None) -> bool:
        if self.policy is None or self.economics is None or self.is_ended(rental_id):
            return True
        economics = self.economics(rental_id)
        if economics is None:
            return True
        last = self.last_settled_at.get(rental_id, economics.started_at_s)
        if gas_price is None:  # interval rule only
            return now_s - last >= self.policy.interval_cap_s(economics)
        return self.policy.is_due(economics, last, now_s, gas_price)

    def __call__(self) -> list[int]:
        ids = list(self.settleable())
        self._forget(set(ids))
        now, now_s = self._clock(), int(self._wall())
        gas_price = self._gas_price()
        due = []
        for rental_id in ids:
            if self._idle(rental_id, now):
                continue
            if not self._worth_it(rental_id, now_s, gas_price):
                self.deferred_by_value += 1
                continue
            due.append(rental_id)
        due.sort(key=lambda r: (self._attempted.get(r, float("-inf")), r))
        if self.max_per_round is not None:
            due = due[: self.max_per_round]
        for rental_id in due:
            self._attempted[rental_id] = now
        return due

    def record(self, outcome: Outcome) -> None:
        """Remember a usage outcome (fault outcomes say nothing about the rental's sequence)."""
        if outcome.fault_id is not None:
            return
        rental_id = outcome.rental_id
        chain_sequence = outcome.chain_sequence
        if chain_sequence is not None:
            chain_sequence = max(chain_sequence, self.last_settled.get(rental_id, 0))
            self.last_settled[rental_id] = chain_sequence
        settled_at = int(self._wall()) if outcome.status == "settled" else outcome.chain_settled_at
        if settled_at is not None:
            self.last_settled_at[rental_id] = max(settled_at, self.last_settled_at.get(rental_id, 0))
        head = self._heads.get(rental_id, 0)
        behind = outcome.status == "nothing_new" and outcome.sequence is not None and outcome.sequence < head
        self._lagging[rental_id] = self._lagging.get(rental_id, 0) + 1 if behind else 0
        self._looked[rental_id] = (head, outcome.status, chain_sequence, self._clock())


class SettlementLoop(BackgroundLoop):
    """Settles the rentals ``rental_ids()`` names every ``interval_s`` seconds, in a thread.

    ``batch=True`` uses ``settleBatch`` (as many transactions as the round needs);
    ``submit_delay_s`` is multiplied by this node's rank in the signer set and waited between
    finding a quorum and sending it (then the chain is read again), so nodes do not all pay gas
    for the same report. ``slash_faults=True`` also submits quorum-signed fault reports.
    """

    thread_name = "gpurent-settlement"

    def __init__(
        self,
        aggregator: Aggregator,
        rental_ids: Callable[[], Iterable[int]],
        *,
        interval_s: float = 30.0,
        batch: bool = True,
        submit_delay_s: float = 0.0,
        slash_faults: bool = True,
        on_outcome: Callable[[Outcome], None] | None = None,
        ended_rentals: Callable[[], Iterable[int]] = lambda: (),
    ) -> None:
        self.aggregator = aggregator
        self.rental_ids = rental_ids
        self.ended_rentals = ended_rentals
        self._end_fault_done: set[int] = set()  # ended rentals whose end-challenge fault is decided
        self.interval_s = interval_s
        self.batch = batch
        self.submit_delay_s = submit_delay_s
        self.slash_faults = slash_faults
        self.on_outcome = on_outcome
        self.outcomes: list[Outcome] = []  # the latest ones (trimmed: a node runs for months)
        self.keep_outcomes = 1000
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _rank(self) -> int:
        try:
            signers = list(self.aggregator.client.signer_set().signers)
        except ChainError:
            return 0
        account = self.aggregator.client.account
        return signers.index(account) if account in signers else len(signers)  # outsiders go last

    def run_once(self) -> list[Outcome]:
        ids = list(self.rental_ids())
        ended: list[int] = []
        if self.slash_faults:
            all_ended = set(self.ended_rentals())
            self._end_fault_done &= all_ended  # finalized rentals leave it
            ended = sorted(all_ended - self._end_fault_done)
        if not ids and not ended:
            return []
        self.aggregator.submit_delay_s = self.submit_delay_s * self._rank() if self.submit_delay_s else 0.0
        self.aggregator.stop = self._stop
        outcomes: list[Outcome] = []
        if self.batch and len(ids) > 1:
            outcomes.extend(self.aggregator.settle_batch(ids))
        elif ids:
            outcomes.extend(self.aggregator.settle_rental(i) for i in ids)
        if self.slash_faults:
            for rental_id in ids:
                if self._stop.is_set():
                    break
                outcomes.extend(self.aggregator.submit_faults(rental_id))
            outcomes.extend(self._end_faults(ended))
        self._record(outcomes)
        return outcomes

    def _end_faults(self, ended: list[int]) -> list[Outcome]:
        """Each Ended rental (not only the due ones: its end challenge is decided after its last
        batch) is asked for its end-challenge fault every round until that fault is decided or
        the rental is finalized (it then leaves ``ended_rentals``)."""
        outcomes: list[Outcome] = []
        for rental_id in ended:
            if self._stop.is_set():
                break
            found = self.aggregator.submit_end_fault(rental_id)
            if any(o.status in DECIDED for o in found):
                self._end_fault_done.add(rental_id)
            outcomes.extend(found)
        return outcomes

    def _record(self, outcomes: list[Outcome]) -> None:
        if len(self.outcomes) + len(outcomes) > self.keep_outcomes:
            del self.outcomes[: max(0, len(self.outcomes) + len(outcomes) - self.keep_outcomes // 2)]
        for outcome in outcomes:
            self.outcomes.append(outcome)
            if self.on_outcome is not None:
                self.on_outcome(outcome)
            if outcome.status in ("settled", "slashed"):
                log.info("rental %d: %s (sequence %s, tx %s)", outcome.rental_id, outcome.status,
                         outcome.sequence, outcome.tx_hash)
            elif outcome.status == "failed" or outcome.burned_gas:
                log.warning("rental %d: %s (sequence %s, fault %s): %s", outcome.rental_id, outcome.status,
                            outcome.sequence, outcome.fault_id, outcome.detail[:300])
        del self.outcomes[: max(0, len(self.outcomes) - self.keep_outcomes)]

    def run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.run_once()
            except Exception as exc:  # keep settling: a bad round must not stop payments
                self.errors += 1
                log.warning("settlement round failed: %s: %s", type(exc).__name__, exc)
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))
