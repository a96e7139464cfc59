"""Request bodies of the tx planning endpoints -> ``oracle.actions.plan_*`` -> JSON TxRequests.

This module only parses and checks what the browser sent (addresses, ids, human amounts in the
right token's decimals) and shapes the answer; what to send, approvals included, is the
actions layer's (SPEC-R4 §4), the same plans the CLI executes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from oracle.actions import reads
from oracle.protocol import RentalStatus
from oracle.units import format_amount, parse_amount
from oracle.web.errors import ApiError, checksum
from oracle.web.state import WebState


@dataclass(frozen=True)
class ActionSpec:
    fields: dict[str, str]  # body field -> kind: address|int|amount:<token source>|ids|bytes32|text|bool
    token: Callable[[WebState, dict[str, Any]], str | None] | None = None  # whose decimals amounts use


def _offer_token(state: WebState, body: dict[str, Any]) -> str | None:
    row = state.db().execute("SELECT payment_token FROM offers WHERE offer_id=?", (body.get("offer_id"),)).fetchone()
    if row is None:
        raise ApiError(404, f"no offer {body.get('offer_id')} in the index", "offer_id")
    return row[0]


def _rental_token(state: WebState, body: dict[str, Any]) -> str | None:
    row = state.db().execute("SELECT data FROM rentals WHERE rental_id=?", (body.get("rental_id"),)).fetchone()
    if row is None:
        raise ApiError(404, f"no rental {body.get('rental_id')} in the index", "rental_id")
    return json.loads(row[0]).get("payment_token")


def _body_token(state: WebState, body: dict[str, Any]) -> str | None:
    return body.get("token") or body.get("payment_token")


def _stake_token(state: WebState, body: dict[str, Any]) -> str | None:
    return state.config.stake_token or state.config.default_token


_OFFER_FIELDS = {"gpu_model": "text", "gpu_count": "int", "payment_token": "address", "price_per_gpu_hour": "amount",
                 "price_per_kwh": "amount", "region": "text", "grid_intensity_g_per_kwh": "int",
                 "max_duration_s": "int", "min_uptime_bps": "int", "max_gap_s": "int?", "agent": "address"}

ACTIONS: dict[str, ActionSpec] = {
    "open_rental": ActionSpec({"offer_id": "int", "gpu_count": "int", "budget": "amount", "workload_hash": "bytes32?",
                               "offer_version": "int?"}, _offer_token),
    "top_up": ActionSpec({"rental_id": "int", "amount": "amount"}, _rental_token),
    "start_rental": ActionSpec({"rental_id": "int"}),
    "end_rental": ActionSpec({"rental_id": "int"}),
    "cancel_rental": ActionSpec({"rental_id": "int"}),
    "finalize_rental": ActionSpec({"rental_id": "int"}),
    "claim": ActionSpec({"rental_ids": "ids"}),
    "withdraw": ActionSpec({"token": "address?", "to": "address?"}),
    "stake": ActionSpec({"amount": "amount"}, _stake_token),
    "request_unstake": ActionSpec({"amount": "amount"}, _stake_token),
    "complete_unstake": ActionSpec({"to": "address?"}),
    "create_offer": ActionSpec(dict(_OFFER_FIELDS), _body_token),
    "update_offer": ActionSpec({"offer_id": "int", **_OFFER_FIELDS}, _body_token),
    "withdraw_offer": ActionSpec({"offer_id": "int"}),
}


def _int(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    try:
        number = int(value)  # type: ignore[arg-type]
        if isinstance(value, bool) or (isinstance(value, float) and value != number) or number < 0:
            raise ValueError
    except (TypeError, ValueError):
        raise ApiError(400, f"{name}: {value!r} is not a whole number of 0 or more", name) from None
    return number


def parse_body(state: WebState, action: str, body: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """(from, keyword arguments for plan_<action>, the amounts' token) or ApiError 400/404."""
    spec = ACTIONS.get(action)
    if spec is None:
        raise ApiError(404, f"no transaction action {action!r}; one of {', '.join(sorted(ACTIONS))}", "action")
    sender = checksum(body.get("from", ""), "from")
    body = {**body, "from": sender}
    args: dict[str, Any] = {}
    for name, kind in spec.fields.items():
        optional = kind.endswith("?")
        kind = kind.rstrip("?")
        if kind == "amount":
            continue
        if body.get(name) in (None, ""):
            if optional:
                continue
            raise ApiError(400, f"{name}: missing", name)
        if kind == "int":
            args[name] = _int(body, name)
        elif kind == "address":
            args[name] = checksum(body[name], name)
        elif kind == "ids":
            if not isinstance(body[name], list) or not body[name]:
                raise ApiError(400, f"{name}: give a list of ids", name)
            args[name] = [_int({name: v}, name) for v in body[name]]
        elif kind == "bytes32":
            text = str(body[name])
            if not (text.startswith("0x") and len(text) == 66):
                raise ApiError(400, f"{name}: 0x and 64 hex digits", name)
            args[name] = bytes.fromhex(text[2:])
        else:
            args[name] = str(body[name])
    token = None
    amount_fields = [n for n, k in spec.fields.items() if k.rstrip("?") == "amount"]
    if amount_fields:
        body_with_ids = {**body, **args}
        token_address = spec.token(state, body_with_ids) if spec.token else state.config.default_token
        token = state.tokens.get(token_address)
        for name in amount_fields:
            raw = body.get(f"{name}_raw")
            if raw not in (None, ""):
                args[name] = _int({name: raw}, name)
            elif body.get(name) not in (None, ""):
                try:
                    args[name] = parse_amount(body[name], int(token["decimals"]), name)
                except ValueError as exc:
                    raise ApiError(400, str(exc), name) from None
            else:
                unit = token["symbol"] or "token units"
                raise ApiError(400, f"{name}: missing (give {name} in {unit} or {name}_raw)", name)
    return sender, args, token


def _terms(args: dict[str, Any]) -> dict[str, Any]:
    return {"gpu_model": args["gpu_model"], "gpu_count": args["gpu_count"], "payment_token": args["payment_token"],
            "price_per_gpu_hour": args["price_per_gpu_hour"], "price_per_kwh": args["price_per_kwh"],
            "region": args["region"], "grid_intensity_g_per_kwh": args["grid_intensity_g_per_kwh"],
            "max_duration_seconds": args["max_duration_s"], "min_uptime_bps": args["min_uptime_bps"],
            "max_gap_seconds": args.get("max_gap_s", 0), "agent": args["agent"]}


def _claims(view: Any, args: dict[str, Any]) -> list[Any]:
    """Before a withdrawal: claim the account's accrued provider earnings, like plan_withdraw's
    claim_first, but with the candidate rentals from the index (its running or ended rentals as
    provider) instead of reading every rental on chain; each candidate's claimable is read live."""
    from oracle.actions import rentals

    ids = [int(r[0]) for r in args["_db"].execute(
        "SELECT rental_id FROM rentals WHERE provider=? AND status IN (?, ?) ORDER BY rental_id",
        (view.account, int(RentalStatus.ACTIVE), int(RentalStatus.ENDED))).fetchall()]
    ids = [i for i in ids if reads.claimable(view, i)]
    return rentals.plan_claim(view, ids) if ids else []


def _planners() -> dict[str, Callable[[Any, dict[str, Any]], list[Any]]]:
    """action -> plan(view, parsed body) through oracle.actions (SPEC-R4 §4)."""
    from oracle.actions import offers, rentals, staking

    return {
        "open_rental": lambda v, a: rentals.plan_open_rental(
            v, a["offer_id"], a["budget"], gpus=a["gpu_count"], workload_hash=a.get("workload_hash"),
            offer_version=a.get("offer_version")),
        "top_up": lambda v, a: rentals.plan_top_up(v, a["rental_id"], a["amount"]),
        "start_rental": lambda v, a: rentals.plan_start_rental(v, a["rental_id"]),
        "end_rental": lambda v, a: rentals.plan_end_rental(v, a["rental_id"]),
        "cancel_rental": lambda v, a: rentals.plan_cancel_rental(v, a["rental_id"]),
        "finalize_rental": lambda v, a: rentals.plan_finalize_rental(v, a["rental_id"]),
        "claim": lambda v, a: rentals.plan_claim(v, a["rental_ids"]),
        "withdraw": lambda v, a: [*_claims(v, a), *rentals.plan_withdraw(v, a.get("token"), to=a.get("to"),
                                                                          claim_first=False)],
        "stake": lambda v, a: staking.plan_stake(v, a["amount"]),
        "request_unstake": lambda v, a: staking.plan_request_unstake(v, a["amount"]),
        "complete_unstake": lambda v, a: staking.plan_complete_unstake(v, a.get("to")),
        "create_offer": lambda v, a: offers.plan_create_offer(v, _terms(a)),
        "update_offer": lambda v, a: offers.plan_update_offer(v, a["offer_id"], _terms(a)),
        "withdraw_offer": lambda v, a: offers.plan_withdraw_offer(v, a["offer_id"]),
    }


def tx_json(request: Any) -> dict[str, Any]:
    data = request.data
    data_hex = data if isinstance(data, str) else "0x" + bytes(data).hex()
    return {"to": request.to, "data": data_hex, "value": hex(int(request.value or 0)), "label": request.label,
            "function": getattr(request, "function", "")}


def _sentence(exc: BaseException) -> str:
    name = getattr(exc, "error_name", "")
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{text}" if not name or name in text else f"{name}: {text}"


def plan(state: WebState, action: str, body: dict[str, Any]) -> dict[str, Any]:
    from oracle.errors import GpurentError

    sender, args, token = parse_body(state, action, body)
    view = state.action_view(sender)
    try:
        requests = _planners()[action](view, {**args, "_db": state.db()})
    except ApiError:
        raise
    except (GpurentError, ValueError, LookupError) as exc:  # the action refused: say why, send nothing
        raise ApiError(400, _sentence(exc)) from None
    except Exception as exc:  # the chain did not answer a read the plan needs
        raise ApiError(503, f"could not plan {action}: {_sentence(exc)}") from None
    summary: dict[str, Any] = {}
    if token is not None:
        for name, kind in ACTIONS[action].fields.items():
            if kind.rstrip("?") == "amount" and name in args:
                summary[name] = args[name]
                summary[f"{name}_display"] = format_amount(args[name], int(token["decimals"]), str(token["symbol"]))
        summary["token"] = token
    return {"action": action, "from": sender, "txs": [tx_json(r) for r in requests], "summary": summary}
