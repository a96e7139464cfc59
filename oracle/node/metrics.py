"""Prometheus metrics of one node (a registry per app, so several nodes can share a process).

The chain side (a node with ``rpc_url``) adds, read at scrape time from its threads' state
(:meth:`NodeMetrics.attach_chain`, nothing is polled for the scrape):

- ``gpurent_node_chain_up``: 1 while the event follower's latest poll of the RPC succeeded;
- ``gpurent_node_chain_head_block``, ``gpurent_node_chain_follower_next_block`` and
  ``gpurent_node_chain_follower_lag_blocks`` (confirmed blocks not yet read: 0 when caught up;
  the ``confirmations`` newest blocks are never counted as lag);
- ``gpurent_node_chain_follower_{events,errors,rewinds}_total``;
- ``gpurent_node_chain_rentals{state}`` (active, ended: the rentals that may still settle) and
  ``gpurent_node_chain_last_settled_sequence{rental_id}`` (as the settlement loop last saw it);
- ``gpurent_node_settlement_round_errors_total`` (rounds that failed as a whole, e.g. RPC down)
  and ``gpurent_node_chain_transactions_total{event}`` (the node key's sender: sent, reverted,
  fee_bumps, nonce_resyncs, rebroadcasts, rpc_retries, reorged).

Counted as they happen: ``gpurent_node_submissions_total{result}`` (one per rental per settlement
round and per fault report, by outcome) and ``gpurent_node_settlement_gas_total{outcome}`` (gas
of this node's own mined transactions: settled, slashed, or reverted, i.e. spent for nothing).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["NodeMetrics", "CONTENT_TYPE_LATEST"]


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.batches_accepted = Counter(
            "gpurent_node_batches_accepted", "Telemetry batches stored (new ones)", registry=self.registry
        )
        self.batches_duplicate = Counter(
            "gpurent_node_batches_duplicate", "Telemetry batches already stored, acknowledged again",
            registry=self.registry,
        )
        self.batches_rejected = Counter(
            "gpurent_node_batches_rejected", "Telemetry batches refused, by reason", ["reason"],
            registry=self.registry,
        )
        self.reports_signed = Counter(
            "gpurent_node_reports_signed", "Reports recorded and newly signed, by kind (usage, fault)", ["kind"],
            registry=self.registry,
        )
        self.reports_refused = Counter(
            "gpurent_node_reports_refused", "Signatures refused because a different report was recorded",
            ["kind"], registry=self.registry,
        )
        self.reports_served_stored = Counter(
            "gpurent_node_reports_served_stored", "Report reads answered from storage, without metering",
            registry=self.registry,
        )
        self.edge_refusals = Counter(
            "gpurent_node_edge_refusals", "Requests refused at the edge before the route (body too large, "
            "body timeout, too many bodies in flight)", ["reason"], registry=self.registry,
        )
        self.signatures = Counter(
            "gpurent_node_signatures", "Signatures made with the node key, by what was signed (not counting re-served ones)", ["kind"],
            registry=self.registry,
        )
        self.submissions = Counter(
            "gpurent_node_submissions",
            "Settlement (per rental and round) and fault-report submissions, by result: settled, slashed "
            "(a transaction of this node landed), already_settled (another submitter was first; no gas "
            "unless it reverted on chain), nothing_new, no_quorum, not_settleable (nothing sent), failed",
            ["result"], registry=self.registry,
        )
        self.settlement_gas = Counter(
            "gpurent_node_settlement_gas",
            "Gas used by this node's own mined settle/settleBatch/slash transactions, by outcome "
            "(settled, slashed, reverted)", ["outcome"], registry=self.registry,
        )
        self.ingest_lag_seconds = Gauge(
            "gpurent_node_ingest_lag_seconds",
            "Node clock minus the newest sample of the last accepted batch",
            registry=self.registry,
        )

    def attach_chain(self, status: Callable[[], Mapping[str, Any]]) -> None:
        """Export the chain side's state: ``status()`` is called at each scrape (see module doc)."""
        self.registry.register(_ChainCollector(status))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ChainCollector:
    """Reads the chain side's status dict (``NodeChain.status``) at scrape time."""

    def __init__(self, status: Callable[[], Mapping[str, Any]]) -> None:
        self._status = status

    def describe(self) -> list:  # no scrape at registration
        return []

    def collect(self) -> Iterator[Any]:
        status = self._status()
        follower = status.get("follower", {})
        settlement = status.get("settlement", {})

        def gauge(name: str, doc: str, value: Any) -> Iterator[GaugeMetricFamily]:
            if value is not None:
                yield GaugeMetricFamily(name, doc, value=value)

        def counter(name: str, doc: str, value: Any) -> Iterator[CounterMetricFamily]:
            if value is not None:
                yield CounterMetricFamily(name, doc, value=value)

        yield from gauge("gpurent_node_chain_up", "1 while the event follower's latest RPC poll succeeded",
                         1 if status.get("state") == "following" else 0)
        yield from gauge("gpurent_node_chain_head_block", "Chain head at the follower's latest poll",
                         follower.get("head_block"))
        yield from gauge("gpurent_node_chain_follower_next_block", "First block the follower has not read yet",
                         follower.get("next_block"))
        yield from gauge("gpurent_node_chain_follower_lag_blocks",
                         "Confirmed blocks the follower has not read yet (0 when caught up)",
                         follower.get("lag_blocks"))
        yield from counter("gpurent_node_chain_follower_events", "Market events delivered to the node",
                           follower.get("events"))
        yield from counter("gpurent_node_chain_follower_errors", "Follower polls that failed (RPC errors, retried)",
                           follower.get("errors"))
        yield from counter("gpurent_node_chain_follower_rewinds", "Reorgs the follower rewound over",
                           follower.get("rewinds"))

        rentals = GaugeMetricFamily("gpurent_node_chain_rentals", "Rentals that may still settle, by state",
                                    labels=["state"])
        for state, count in sorted(status.get("rentals", {}).items()):
            rentals.add_metric([state], count)
        yield rentals
        sequences = GaugeMetricFamily("gpurent_node_chain_last_settled_sequence",
                                      "Last settled sequence on chain, as the settlement loop last saw it",
                                      labels=["rental_id"])
        for rental_id, sequence in sorted(settlement.get("last_settled_sequence", {}).items()):
            sequences.add_metric([str(rental_id)], sequence)
        yield sequences
        yield from counter("gpurent_node_settlement_round_errors",
                           "Settlement rounds that failed as a whole (logged and retried)",
                           settlement.get("round_errors"))
        transactions = CounterMetricFamily("gpurent_node_chain_transactions",
                                           "The node key's transaction sender, by event", labels=["event"])
        for event, count in sorted(status.get("transactions", {}).items()):
            transactions.add_metric([event], count)
        yield transactions
