"""Liveness, Prometheus metrics, and what this node is."""

from __future__ import annotations

import threading
import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from oracle.node.api.deps import NodeDep
from oracle.node.metrics import CONTENT_TYPE_LATEST
from oracle.redact import redact

router = APIRouter(tags=["operations"])
_probe_lock = threading.Lock()


PROBE_EVERY_S = 1.0  # at most one durable probe write a second, however often /healthz is asked


def _probe_write(node) -> None:
    now = time.monotonic()
    with _probe_lock:
        last_at, last_error = node.__dict__.get("_write_probe", (None, None))
        if last_at is None or now - last_at >= PROBE_EVERY_S:
            try:
                node.storage.probe_write()
                last_error = None
            except Exception as exc:
                last_error = exc
            node.__dict__["_write_probe"] = (now, last_error)
    if last_error is not None:
        raise last_error


@router.get("/healthz", summary="Liveness: the node answers and its database can be read and written "
                               "(with rpc_url: also the chain follower's and settlement loop's state)")
def healthz(node: NodeDep, request: Request) -> JSONResponse:
    try:
        node.storage.batch_head(0)
        _probe_write(node)  # a node that cannot store batches is not healthy, whatever it reads
    except Exception as exc:  # any storage failure makes the node unhealthy
        return JSONResponse({"status": "unhealthy", "detail": redact(str(exc))}, status_code=503)
    body = {"status": "ok", "signer": node.attestor.address}
    chain = getattr(request.app.state, "chain", None)
    if chain is not None:  # informational: an RPC outage does not make the node's API unhealthy
        body["chain"] = chain.status()
    return JSONResponse(body)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(node: NodeDep) -> Response:
    return Response(node.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/node", summary="This node's signer address, EIP-712 domain and peers")
def node_info(node: NodeDep) -> dict:
    settings = node.settings
    return {
        "signer": node.attestor.address,
        "chain_id": settings.chain_id,
        "market_address": settings.market_address,
        "signer_set_version": settings.signer_set_version,
        "peers": list(settings.peers),
        "dev_mode": settings.dev_mode,
    }
