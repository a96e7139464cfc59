"""Transaction planning for the browser wallet (EIP-1193) and tx status (WEB-API.md).

``POST /api/v1/tx/<action>`` answers the unsigned transactions ``{to, data, value, label}`` that
``oracle.actions.plan_<action>`` plans for the wallet address ``from``; the page sends them
with ``eth_sendTransaction``. No key is ever involved here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, Body, Request
from hexbytes import HexBytes

from oracle.web.api_market import web
from oracle.web.errors import ApiError, respond
from oracle.web.txplan import ACTIONS, plan

router = APIRouter(prefix="/api/v1")


@router.get("/tx/actions")
def actions() -> Response:
    return respond({"actions": {name: spec.fields for name, spec in ACTIONS.items()}})


@router.post("/tx/{action}")
def plan_action(request: Request, action: str, body: dict[str, Any] = Body(default_factory=dict)) -> Response:
    state = web(request)
    if state.w3 is None:
        raise ApiError(503, "this server has no chain connection to plan transactions with")
    return respond(plan(state, action, body))


@router.get("/tx/{tx_hash}")
def tx_status(request: Request, tx_hash: str) -> Response:
    state = web(request)
    if state.w3 is None:
        raise ApiError(503, "this server has no chain connection")
    try:
        digest = HexBytes(tx_hash)
    except Exception:
        raise ApiError(400, f"tx_hash: {tx_hash!r} is not a hash", "tx_hash") from None
    if len(digest) != 32:
        raise ApiError(400, f"tx_hash: {tx_hash!r} is not 32 bytes", "tx_hash")
    try:
        receipt = state.w3.eth.get_transaction_receipt(digest)
    except Exception:
        receipt = None
    if receipt is None:
        try:
            known = state.w3.eth.get_transaction(digest) is not None
        except Exception:
            known = False
        return respond({"hash": digest.to_0x_hex(), "status": "pending" if known else "unknown", "block": None,
                        "indexed": False})
    block = int(receipt["blockNumber"])
    index = state.index_status()
    return respond({"hash": digest.to_0x_hex(), "status": "mined" if int(receipt["status"]) == 1 else "failed",
            "block": block, "indexed": index["last_block"] >= block})
