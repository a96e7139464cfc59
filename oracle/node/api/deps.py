"""What routes receive: the node's runtime pieces as ``Annotated`` dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from oracle.node.attestor import Attestor
from oracle.node.errors import RateLimited
from oracle.node.metrics import NodeMetrics
from oracle.node.ratelimit import TokenBucketLimiter
from oracle.node.settings import NodeSettings
from oracle.node.storage import GroupCommitWriter, NodeStorage


@dataclass
class NodeRuntime:
    """Everything one running node holds; lives on ``app.state.node``."""

    settings: NodeSettings
    storage: NodeStorage
    attestor: Attestor
    writer: GroupCommitWriter
    ip_limiter: TokenBucketLimiter
    agent_limiter: TokenBucketLimiter
    report_limiter: TokenBucketLimiter
    metrics: NodeMetrics
    challenges: Any = None  # oracle.node.challenges.ChallengeService when settings.challenges != "off"

    def close(self) -> None:
        self.writer.close()
        if self.challenges is not None:
            self.challenges.store.close()
        self.storage.close()


async def get_node(request: Request) -> NodeRuntime:
    return request.app.state.node


async def get_attestor(request: Request) -> Attestor:
    return request.app.state.node.attestor


async def get_metrics(request: Request) -> NodeMetrics:
    return request.app.state.node.metrics


async def get_client_host(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def limit_report_requests(request: Request) -> None:
    """Metering and signing cost CPU: a per-client budget for the report routes."""
    host = request.client.host if request.client else "unknown"
    wait = request.app.state.node.report_limiter.acquire(host)
    if wait:
        raise RateLimited(f"too many report requests from {host}", retry_after_s=wait)


NodeDep = Annotated[NodeRuntime, Depends(get_node)]
AttestorDep = Annotated[Attestor, Depends(get_attestor)]
MetricsDep = Annotated[NodeMetrics, Depends(get_metrics)]
ClientHostDep = Annotated[str, Depends(get_client_host)]
