"""What a node runs beside its HTTP API when it has an RPC endpoint: the event follower that
feeds the rental registry, and the settlement loop (see :class:`ChainServices`)."""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import httpx

from oracle.chain.client import MarketClient
from oracle.chain.events import CursorStore, EventFollower
from oracle.errors import ChainError
from oracle.node.aggregator import Aggregator
from oracle.node.feed import RentalRegistryFeed, read_rental_terms
from oracle.node.quorum import Outcome
from oracle.node.settle_policy import DEFAULT_MAX_REPORTS_PER_TX, RentalEconomics, SettlePolicy
from oracle.node.settlement_loop import DueRentals, SettlementLoop
from oracle.redact import redact


class _WatchedFollower(EventFollower):
    """An :class:`EventFollower` that remembers when its last poll succeeded and why one failed."""

    last_ok_at: float | None = None  # unix seconds of the last successful poll
    last_error: str | None = None  # why the latest poll failed (None once one succeeds again)

    def poll_once(self) -> int:
        try:
            delivered = super().poll_once()
        except Exception as exc:
            self.last_error = redact(f"{type(exc).__name__}: {exc}")[:300]
            raise
        self.last_ok_at = time.time()
        self.last_error = None
        return delivered


class ChainServices:
    """What a node runs beside its HTTP API when it has an RPC endpoint (for ``create_app``'s
    lifespan or ``run_node``): an :class:`EventFollower` that feeds the node's rental registry
    from ``RentalStarted`` (and tracks which rentals may still settle), and a
    :class:`SettlementLoop` that aggregates signatures from ``node_urls`` (this node's own URL
    and its peers) and submits ``settleBatch``/``settle`` and fault reports with the node key.

    ``operator_registry`` (the OperatorRegistry's address) sends settlements through its
    ``settleFor``/``settleBatchFor`` (gas rebate; oracle/node/submit.py). ``settle=False`` runs the
    follower only. ``local_head`` (rental id -> batches this node
    holds) lets idle rentals skip settlement rounds (:class:`DueRentals`); ``settle_policy``
    settles a rental only when it is worth the gas or its maximum interval passed (None:
    every round); ``max_rentals_per_round`` bounds a round (the rest rotate to the front of the
    next); ``on_outcome`` sees every outcome (metrics). Constructing it makes no RPC call: an
    unreachable endpoint only shows in the threads' errors, which they log and retry.

    Its state (follower cursor, block-hash checkpoints, rental statuses) lives in its own
    tables of ``db_path`` (the node's SQLite file is fine).
    """

    def __init__(
        self,
        *,
        rpc_url: str,
        node_key: bytes,
        market_address: str,
        node_urls: Sequence[str],
        registries: Sequence[Any],
        db_path: str,
        start_block: int = 0,
        confirmations: int = 2,
        poll_interval_s: float = 2.0,
        settle_interval_s: float = 60.0,
        batch: bool = True,
        submit_delay_s: float = 5.0,
        slash_faults: bool = True,
        policy: Any = None,
        http: httpx.Client | None = None,
        auth: httpx.Auth | None = None,
        settle: bool = True,
        local_head: Callable[[int], int] | None = None,
        recheck_s: float | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
        settle_policy: SettlePolicy | None = None,
        max_rentals_per_round: int | None = None,
        max_reports_per_tx: int = DEFAULT_MAX_REPORTS_PER_TX,
        max_faults_per_rental: int = 16,
        operator_registry: str | None = None,
    ) -> None:
        self.client = MarketClient.from_private_key(rpc_url, node_key, market_address, policy=policy)
        # the follower thread reads through its own connection (no HTTP session shared across threads)
        reader = MarketClient.from_private_key(rpc_url, node_key, market_address, policy=policy)
        self.settle = settle
        self.store = CursorStore(db_path)
        self.feed = RentalRegistryFeed(reader, registries, store=self.store)
        self.follower = _WatchedFollower(
            reader.w3, reader.address, reader.abi, self.feed,
            store=self.store, confirmations=confirmations, start_block=start_block,
            poll_interval_s=poll_interval_s, on_rewind=self.feed.on_rewind,
            event_names=["RentalStarted", "RentalEnded", "RentalFinalized", "RentalCancelled"],
        )
        self.aggregator = Aggregator(self.client, node_urls, http=http, auth=auth,
                                     max_reports_per_tx=max_reports_per_tx,
                                     max_faults_per_rental=max_faults_per_rental)
        if operator_registry:  # settle through the registry: the node's gas is rebated
            from oracle.node.submit import registry_submitter

            self.aggregator.submitter = registry_submitter(self.client, operator_registry)
        self._economics: dict[int, RentalEconomics | None] = {}
        self.due = DueRentals(
            self.feed.settleable, local_head,
            recheck_s=recheck_s if recheck_s is not None else max(60.0, 10 * settle_interval_s),
            lag_retry_s=settle_interval_s,
            policy=settle_policy, economics=self._economics_of, gas_price_wei=self._gas_price_wei,
            is_ended=self.feed.is_ended, max_per_round=max_rentals_per_round,
        )
        self._on_outcome = on_outcome
        self.loop = SettlementLoop(
            self.aggregator, self.due, interval_s=settle_interval_s, batch=batch,
            submit_delay_s=submit_delay_s, slash_faults=slash_faults, on_outcome=self._outcome,
            ended_rentals=lambda: [r for r in self.feed.settleable() if self.feed.is_ended(r)],
        )

    def _economics_of(self, rental_id: int) -> RentalEconomics | None:
        """From the feed's terms; a rental known from before a restart is read once (settlement thread)."""
        known = self.feed.economics(rental_id)
        if known is not None:
            return known
        if rental_id not in self._economics:
            try:
                self._economics[rental_id] = read_rental_terms(self.client, rental_id).economics()
            except ChainError:
                return None  # not cached: read again next round
        return self._economics[rental_id]

    def _gas_price_wei(self) -> int:
        """The node's estimate of what a transaction pays per gas now (``eth_gasPrice``: base fee + tip)."""
        sender = self.client.sender
        return int(sender.rpc(lambda: sender.w3.eth.gas_price, "eth_gasPrice"))

    def _outcome(self, outcome: Outcome) -> None:
        self.due.record(outcome)
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    def start(self) -> "ChainServices":
        self.follower.start()
        if self.settle:
            self.loop.start()
        return self

    def stop(self) -> None:
        self.loop.stop()
        self.follower.stop()
        self.aggregator.close()
        self.store.close()
