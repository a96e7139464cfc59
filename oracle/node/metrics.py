"""Prometheus metrics of one node (a registry per app, so several nodes can share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
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
        self.signatures = Counter(
            "gpurent_node_signatures", "Signatures made with the node key, by what was signed (not counting re-served ones)", ["kind"],
            registry=self.registry,
        )
        self.submissions = Counter(
            "gpurent_node_submissions", "Settlement transactions submitted, by result", ["result"],
            registry=self.registry,
        )
        self.ingest_lag_seconds = Gauge(
            "gpurent_node_ingest_lag_seconds",
            "Node clock minus the newest sample of the last accepted batch",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
