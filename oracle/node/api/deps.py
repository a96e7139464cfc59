"""What routes receive: the node's runtime pieces as ``Annotated`` dependencies."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from oracle.node.attestor import Attestor
from oracle.node.errors import RateLimited
from oracle.node.metrics import NodeMetrics
from oracle.node.peerauth import Peer, PeerAuthError, PeerVerifier
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
    peers: PeerVerifier
    peer_limiter: TokenBucketLimiter
    challenges: Any = None  # oracle.node.challenges.ChallengeService when settings.challenges != "off"
    #: (rental, page, version) -> (batches held, the GET /faults answer): served until a batch arrives.
    fault_answers: "OrderedDict[tuple, tuple[int, dict[str, Any]]]" = field(default_factory=OrderedDict)
    fault_answers_lock: threading.Lock = field(default_factory=threading.Lock)

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


def request_peer(request: Request) -> Peer | None:
    """The signer-set member that signed this request, None for a stranger; 401 for bad peer headers."""
    from fastapi import HTTPException

    node: NodeRuntime = request.app.state.node
    path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string") or b""
    target = (path + (b"?" + query if query else b"")).decode("latin-1")
    try:
        return node.peers.verify(request.method, target, request.headers)
    except PeerAuthError as exc:
        raise HTTPException(401, detail=f"peer authentication failed: {exc}") from None


async def limit_report_requests(request: Request) -> None:
    """Metering and signing cost CPU: peers (signed by a known signer) get their own budget per
    signer; everybody else shares the per-IP budget of the report routes."""
    node: NodeRuntime = request.app.state.node
    peer = request_peer(request)
    if peer is not None:
        wait = node.peer_limiter.acquire(peer.address)
        who = f"peer {peer.address}"
    else:
        host = request.client.host if request.client else "unknown"
        wait = node.report_limiter.acquire(host)
        who = host
    if wait:
        raise RateLimited(f"too many report requests from {who}", retry_after_s=wait)


NodeDep = Annotated[NodeRuntime, Depends(get_node)]
AttestorDep = Annotated[Attestor, Depends(get_attestor)]
MetricsDep = Annotated[NodeMetrics, Depends(get_metrics)]
ClientHostDep = Annotated[str, Depends(get_client_host)]
