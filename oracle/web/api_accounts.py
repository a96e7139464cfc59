"""GET /api/v1/accounts/{address} and /api/v1/providers/{address} (WEB-API.md)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Response, Request

from oracle.chain.tokens import allowance as token_allowance
from oracle.chain.tokens import balance_of
from oracle.protocol import RentalStatus
from oracle.web.api_market import _now, web
from oracle.web.api_rentals import rental_out
from oracle.web.derive import kv_get
from oracle.web.errors import ApiError, checksum, respond
from oracle.web.market import provider_offers
from oracle.web.state import WebState
from oracle.web.views import amount_fmt, offer_json, reputation_json, slash_json, uptime_json, with_displays

router = APIRouter(prefix="/api/v1")

WITHDRAWABLE_ABI = [{"type": "function", "name": "withdrawable", "stateMutability": "view",
                     "inputs": [{"name": "account", "type": "address"}, {"name": "token", "type": "address"}],
                     "outputs": [{"name": "", "type": "uint256"}]}]


def known_tokens(state: WebState) -> list[str]:
    db = state.db()
    tokens = set(kv_get(db, "payment_tokens", {})) | set(kv_get(db, "stake_tokens", {}))
    return sorted(tokens)


def live_balances(state: WebState, address: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(withdrawable, balances): live reads (one eth_call each) for every known token."""
    if state.w3 is None:
        return [], []
    market = state.w3.eth.contract(address=state.config.market, abi=WITHDRAWABLE_ABI)
    withdrawable, balances = [], []
    try:
        for address_t in known_tokens(state):
            token = state.tokens.get(address_t)
            money = amount_fmt(token)
            amount = int(market.functions.withdrawable(address, token["address"]).call())
            withdrawable.append(with_displays({"token": token, "amount": amount}, {"amount": money}))
            balance = balance_of(state.w3, token["address"], address)
            allowance = token_allowance(state.w3, token["address"], address, state.config.market)
            balances.append(with_displays({"token": token, "amount": balance, "allowance": allowance},
                                          {"amount": money, "allowance": money}))
    except Exception as exc:
        raise ApiError(503, f"the chain did not answer a balance read ({type(exc).__name__})") from None
    return withdrawable, balances


@router.get("/accounts/{address}")
def account(request: Request, address: str) -> Response:
    state = web(request)
    address = checksum(address, "address")
    clock = _now(state)
    rows = state.db().execute("SELECT * FROM rentals WHERE renter=? ORDER BY rental_id DESC", (address,)).fetchall()
    withdrawable, balances = live_balances(state, address)
    return respond({"address": address, "rentals_as_renter": [rental_out(state, r, clock["now"]) for r in rows],
                    "withdrawable": withdrawable, "balances": balances, **clock})


def _stake_json(state: WebState, stake: dict[str, Any] | None, required: int | None,
                now_s: int) -> dict[str, Any] | None:
    if not stake:
        return None
    token = state.tokens.get(stake["token"] if int(stake["token"], 16) else None)
    money = amount_fmt(token)
    active, locked = int(stake["active"]), int(stake["locked"])
    release = int(stake["unbondingReleaseAt"])
    from oracle.units import format_time

    return with_displays({
        "token": token, "active": active, "locked": locked, "unbonding": int(stake["unbonding"]),
        "unbonding_release_at": release or None, "listed_gpus": int(stake["listedGpus"]),
        "required": required, "free": max(0, active - max(locked, required or 0)),
    }, {"active": money, "locked": money, "unbonding": money, "required": money, "free": money,
        "unbonding_release_at": lambda t: format_time(t, now_s)})


def _earnings(state: WebState, address: str) -> list[dict[str, Any]]:
    db = state.db()
    per_token: dict[str, dict[str, int]] = {}
    for row in db.execute("SELECT data FROM rentals WHERE provider=?", (address,)).fetchall():
        data = json.loads(row[0])
        chain = data.get("chain") or {}
        token = data.get("payment_token")
        paid, fee_bps = int(chain.get("paid", 0)), int(chain.get("feeBps", 0))
        acc = per_token.setdefault(token, {"paid_gross": 0, "fees": 0, "earned": 0, "claimed": 0, "withdrawn": 0})
        fee = paid * fee_bps // 10_000
        acc["paid_gross"] += paid
        acc["fees"] += fee
        acc["earned"] += paid - fee
        acc["claimed"] += int(chain.get("claimed", 0))
    for token, amount in db.execute(
            "SELECT token, amount FROM ledger WHERE account=? AND kind='withdrawn'", (address,)).fetchall():
        per_token.setdefault(token, {"paid_gross": 0, "fees": 0, "earned": 0, "claimed": 0, "withdrawn": 0})
        per_token[token]["withdrawn"] += int(amount)
    out = []
    for token_address, acc in sorted(per_token.items(), key=lambda kv: kv[0] or ""):
        token = state.tokens.get(token_address)
        acc["claimable"] = acc["earned"] - acc["claimed"]
        money = amount_fmt(token)
        out.append(with_displays({"token": token, **acc}, {k: money for k in acc}))
    return out


@router.get("/providers/{address}")
def provider(request: Request, address: str) -> Response:
    state = web(request)
    address = checksum(address, "address")
    db = state.db()
    clock = _now(state)
    prow = db.execute("SELECT * FROM providers WHERE address=?", (address,)).fetchone()
    if prow is None:
        raise ApiError(404, f"{address} has no stake, offer or rental in the index", "address")
    stake = json.loads(prow["stake"]) if prow["stake"] else None
    minimum = int(kv_get(db, "stake_tokens", {}).get(stake["token"], 0)) if stake else 0
    required = minimum * int(stake["listedGpus"]) if stake else None
    rentals = db.execute("SELECT * FROM rentals WHERE provider=? ORDER BY rental_id DESC", (address,)).fetchall()
    groups: dict[str, list[dict[str, Any]]] = {"waiting_for_start": [], "active": [], "ended": [], "done": []}
    for r in rentals:
        item = rental_out(state, r, clock["now"])
        status = int(r["status"])
        if status == RentalStatus.OPEN:
            deadline = item.get("start_deadline") or 0
            item["start_deadline_in_s"] = max(0, deadline - clock["now"])
            groups["waiting_for_start"].append(item)
        elif status == RentalStatus.ACTIVE:
            groups["active"].append(item)
        elif status == RentalStatus.ENDED:
            groups["ended"].append(item)
        else:
            groups["done"].append(item)
    slashes = db.execute("SELECT * FROM slashes WHERE provider=? ORDER BY block, rental_id, fault_id",
                         (address,)).fetchall()
    withdrawable, _ = live_balances(state, address)
    return respond({
        "address": address,
        "stake": _stake_json(state, stake, required, clock["now"]),
        "reputation": reputation_json(json.loads(prow["rep"]) if prow["rep"] else None, prow["score_bps"]),
        **uptime_json(prow["uptime_bps"]),
        "verification": {"challenges_passed": int(prow["ch_pass"]), "challenges_failed": int(prow["ch_fail"]),
                         "settled_reports": int(prow["settled_reports"]), "slash_count": int(prow["slash_count"]),
                         "rentals": int(prow["rentals"])},
        "offers": [offer_json(r, state.tokens.get(r["payment_token"])) for r in provider_offers(db, address)],
        "rentals": groups,
        "earnings": _earnings(state, address),
        "slashes": [slash_json(r, state.tokens.get(r["token"]), clock["now"]) for r in slashes],
        "withdrawable": withdrawable,
        **clock,
    })
