"""Proof of GPU: the agent pulls its challenges and posts answers; nodes read each other's verdicts."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from oracle.node.api.deps import limit_report_requests
from oracle.node.challenges import ChallengeError, ChallengeService

# Every route costs the node work (a verification is up to ~0.2 s of CPU): the report budget per client.
router = APIRouter(tags=["proof of GPU"], dependencies=[Depends(limit_report_requests)])

_HEX32 = r"^0x[0-9a-f]{64}$"
MAX_OPENINGS = 64


class CommitmentWire(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    top_root: str = Field(pattern=_HEX32, description="Merkle root over the checkpoint roots")
    gpu_uuid: str = Field(min_length=1, max_length=128, description="NVML UUID of the GPU that computed it")
    gpu_serial: str = Field(min_length=1, max_length=128, description="NVML board serial")
    signature: str = Field(pattern=r"^0x[0-9a-f]{130}$", description="agent's EIP-191 signature of the commitment digest")


class OpeningsWire(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    openings: list[dict[str, Any]] = Field(max_length=MAX_OPENINGS)
    signature: str = Field(pattern=r"^0x[0-9a-f]{130}$",
                           description="agent's EIP-191 signature of keccak(version || seed || keccak(canonical JSON of openings))")


def _service(request: Request) -> ChallengeService:
    service = request.app.state.node.challenges
    if service is None:
        raise ChallengeError(404, "challenges_off", "this node does not run proof-of-GPU challenges")
    return service


@router.get("/v1/challenges", summary="The rental's challenges not decided yet (with their cells once open), "
                                      "and where its end challenge stands (none, not_ended, awaited, issued)")
async def pending(request: Request, rental_id: int) -> JSONResponse:
    service = _service(request)

    def read() -> dict:
        end = service.end_status(rental_id)  # first: it issues the end challenge once its block is there
        return {"challenges": service.pending(rental_id), "end_challenge": end}

    return JSONResponse(await asyncio.to_thread(read))


@router.get("/v1/challenges/{challenge_id}", summary="One challenge")
async def one(request: Request, challenge_id: str) -> JSONResponse:
    service = _service(request)
    return JSONResponse(service.describe(service._challenge(challenge_id)))


@router.post("/v1/challenges/{challenge_id}/commitment", summary="The agent's commitment (first one wins)")
async def commit(request: Request, challenge_id: str, body: CommitmentWire) -> JSONResponse:
    service = _service(request)
    result = service.post_commitment(challenge_id, bytes.fromhex(body.top_root[2:]), body.gpu_uuid, body.gpu_serial,
                                     bytes.fromhex(body.signature[2:]))
    return JSONResponse(result)


@router.post("/v1/challenges/{challenge_id}/openings", summary="The agent's openings of the drawn cells")
async def open_cells(request: Request, challenge_id: str, body: OpeningsWire) -> JSONResponse:
    service = _service(request)
    # verification costs up to ~1 s of one core: off the event loop
    return JSONResponse(await asyncio.to_thread(service.post_openings, challenge_id, body.openings,
                                                bytes.fromhex(body.signature[2:])))


@router.get("/v1/challenges/{challenge_id}/verdict", summary="This node's signed verdict (404 until decided)")
async def verdict(request: Request, challenge_id: str) -> JSONResponse:
    service = _service(request)
    recorded = await asyncio.to_thread(service.verdict, challenge_id)
    if recorded is None:
        raise ChallengeError(404, "undecided", "not decided yet")
    return JSONResponse({"id": recorded.id, "outcome": recorded.outcome, "detail": recorded.detail,
                         "signer": service.address, "signature": "0x" + (recorded.signature or b"").hex()})


@router.get("/v1/rentals/{rental_id}/challenges", summary="A rental's challenges, verdicts and unpaid time")
async def rental_summary(request: Request, rental_id: int) -> JSONResponse:
    service = _service(request)
    return JSONResponse(await asyncio.to_thread(service.summary, rental_id))
