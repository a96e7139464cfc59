"""POST /v1/rentals/{rental_id}/batches: signed telemetry from a provider's agent.

The rental comes from the path, so a batch for a rental this node does not meter is refused
(404) before its body is read, let alone parsed; the body's own ``rental_id`` must match.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from oracle.node.api.deps import NodeRuntime
from oracle.telemetry.batches import (
    MAX_GPUS_PER_BATCH,
    MAX_SAMPLES_PER_BATCH,
    MAX_TEXT_CHARS,
    POWER_LIMIT_RANGE_MW,
    SAMPLE_RANGES,
    UINT64_MAX,
    UINT256_MAX,
)
from oracle.node.errors import BodyTooLarge, RateLimited, UnknownRental

router = APIRouter(tags=["telemetry"])

INLINE_VERIFY_BYTES = 64 * 1024


def _bounded(name: str, description: str | None = None) -> Any:
    low, high = SAMPLE_RANGES[name]
    return Field(ge=low, le=high, description=description)


# The documented request schema. Validation itself is TelemetryBatch.from_wire (one schema):
# these models only describe it in OpenAPI, so every bound comes from its constants.
class GpuWire(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    index: int = _bounded("gpu")
    uuid: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    name: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    power_limit_mw: int = Field(ge=POWER_LIMIT_RANGE_MW[0], le=POWER_LIMIT_RANGE_MW[1])


class SampleWire(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    gpu: int = _bounded("gpu")
    t_ms: int = _bounded("t_ms", "unix milliseconds")
    energy_mj: int = _bounded("energy_mj", "hardware energy counter, millijoules")
    power_mw: int = _bounded("power_mw", "milliwatts; also at most twice the GPU's power_limit_mw")
    util_gpu_pct: int = _bounded("util_gpu_pct")
    util_mem_pct: int = _bounded("util_mem_pct")
    mem_used_mib: int = _bounded("mem_used_mib")
    temp_c: int = _bounded("temp_c")
    foreign_process_count: int | None = Field(
        default=None, ge=1, le=SAMPLE_RANGES["foreign_process_count"][1],
        description="processes on this GPU outside the renter's container (issue 10); present only when >= 1")


class BatchWire(BaseModel):
    """A signed telemetry batch (docs/protocol.md, "Telemetry batches"). Integers only: floats,
    NaN and Infinity are refused, as are unknown fields. The body must be the batch's canonical
    JSON (sorted keys, no whitespace): padding is refused."""

    model_config = ConfigDict(extra="forbid", strict=True)
    chain_id: int = Field(ge=1, le=UINT256_MAX, description="the market's chain id (the node's own)")
    market: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$", description="EIP-55 GpuRentMarket address (the node's own)")
    rental_id: int = Field(ge=0, le=UINT256_MAX)
    agent: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$", description="EIP-55 checksummed agent address")
    batch_seq: int = Field(ge=0, le=UINT64_MAX, description="0 for the rental's first batch, then +1")
    prev_hash: str = Field(pattern=r"^0x[0-9a-f]{64}$", description="hash of batch batch_seq-1 (zeros for 0)")
    gpus: list[GpuWire] = Field(min_length=1, max_length=MAX_GPUS_PER_BATCH)
    samples: list[SampleWire] = Field(min_length=1, max_length=MAX_SAMPLES_PER_BATCH, description="ordered by (t_ms, gpu)")
    signature: str = Field(pattern=r"^0x[0-9a-f]{130}$", description="agent's EIP-191 signature of batch_hash")


class BatchAck(BaseModel):
    status: Literal["accepted", "duplicate"]
    rental_id: int
    batch_seq: int
    batch_hash: str
    next_seq: int


class Problem(BaseModel):
    detail: str
    reason: str


_REFUSALS = {
    401: "signature does not recover to the batch's agent",
    403: "signed by a key other than the rental's registered agent, or for another chain or market",
    404: "unknown rental (the body is not read)",
    408: "body not received within the body timeout",
    409: "sequence gap (expected_seq), conflicting duplicate, broken hash chain, GPU set changed, "
         "samples already stored",
    413: "body larger than the limit",
    422: "malformed (unknown field, float, NaN, out of range, not canonical JSON), impossible values, "
         "future or stale, more samples than the time covered allows",
    429: "rate limited (see Retry-After)",
    503: "too many bodies in flight (see Retry-After)",
}


async def _read_body(request: Request, limit: int) -> bytes:
    # BodyGuard (oracle.node.api.guard) has checked Content-Length and bounds time and total size.
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"batch body exceeds the limit of {limit} bytes", limit_bytes=limit)
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/v1/rentals/{rental_id}/batches",
    response_model=BatchAck,
    summary="Ingest one signed, hash-chained telemetry batch of the rental",
    description="Idempotent: re-sending a stored batch answers 200 with status `duplicate`.",
    responses={code: {"model": Problem, "description": text} for code, text in _REFUSALS.items()},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchWire"}}},
        }
    },
)
async def post_batch(request: Request, rental_id: Annotated[int, Path(ge=0, le=UINT256_MAX)]) -> JSONResponse:
    # The hot path resolves the node from app.state itself instead of through Depends: FastAPI's
    # dependency solving cost ~15 % of this route's CPU in tools/bench_node.py's profile.
    node: NodeRuntime = request.app.state.node
    client_host = request.client.host if request.client else "unknown"
    wait = node.ip_limiter.acquire(client_host)
    if wait:
        raise RateLimited(f"too many batches from {client_host}", retry_after_s=wait)
    attestor = node.attestor
    rental = attestor.registry.get(rental_id)  # before the body: an unknown rental costs nothing more
    if rental is None:
        raise UnknownRental(f"this node meters no rental {rental_id}", rental_id=rental_id)
    body = await _read_body(request, node.settings.max_body_bytes)
    now_ms = attestor.now_ms()
    if len(body) <= INLINE_VERIFY_BYTES:
        verified = attestor.verify(body, now_ms, rental=rental)  # ~0.2 ms: cheaper than a thread hand-off
    else:  # a big batch must not stall every other connection on the event loop
        verified = await asyncio.to_thread(attestor.verify, body, now_ms, rental=rental)
    wait = node.agent_limiter.acquire(verified.rental.agent)
    if wait:
        raise RateLimited(f"too many batches from agent {verified.rental.agent}", retry_after_s=wait)
    outcome = await node.writer.append(verified.record)
    result = attestor.finish(verified, outcome)
    if result.status == "accepted":
        node.metrics.batches_accepted.inc()
        node.metrics.ingest_lag_seconds.set((now_ms - result.newest_sample_ms) / 1000)
    else:
        node.metrics.batches_duplicate.inc()
    return JSONResponse(
        {
            "status": result.status,
            "rental_id": result.rental_id,
            "batch_seq": result.batch_seq,
            "batch_hash": "0x" + result.batch_hash.hex(),
            "next_seq": result.next_seq,
        }
    )
