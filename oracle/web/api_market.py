"""GET /api/v1/meta, /index/status, /offers, /offers/{id}, /gpu-models (WEB-API.md)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Response, Query, Request

from oracle.gpu_models import GPU_MODELS
from oracle.units import parse_amount
from oracle.web.derive import kv_get
from oracle.web.errors import ApiError, checksum, respond
from oracle.web.market import RANGE_FILTERS, MarketQuery, QueryError, get_offer, search_offers
from oracle.web.state import WebState
from oracle.web.views import amount_fmt, offer_json

router = APIRouter(prefix="/api/v1")


def web(request: Request) -> WebState:
    return request.app.state.web


def _now(state: WebState) -> dict[str, int]:
    now, block = state.clock()
    return {"now": now, "block": block}


@router.get("/meta")
def meta(request: Request) -> Response:
    state = web(request)
    cfg = state.config
    db = state.db()
    payment = kv_get(db, "payment_tokens", {})
    stake = kv_get(db, "stake_tokens", {})
    stake_tokens = []
    for address, minimum in stake.items():
        if int(minimum) > 0:
            token = state.tokens.get(address)
            stake_tokens.append({**token, "min_stake_per_gpu": int(minimum),
                                 "min_stake_per_gpu_display": amount_fmt(token)(int(minimum))})
    registry = kv_get(db, "operator_registry")
    return respond({
        "chain_id": cfg.chain_id, "network": cfg.network, "market": cfg.market,
        "operator_registry": (registry or {}).get("address") or cfg.operator_registry or None,
        "timelock": cfg.timelock, "explorer": cfg.explorer, "nodes": list(cfg.nodes),
        "payment_tokens": [state.tokens.get(a) for a, allowed in payment.items() if allowed],
        "stake_tokens": stake_tokens,
        "index": state.index_status(),
        **_now(state),
    })


@router.get("/index/status")
def index_status(request: Request) -> Response:
    state = web(request)
    return respond({**state.index_status(), **_now(state)})


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"{name}: {raw!r} is not a whole number", name) from None


@router.get("/offers")
def offers(
    request: Request,
    sort: str = "effective_price_per_gpu_hour",
    order: str | None = None,
    limit: Annotated[int, Query()] = 50,
    offset: Annotated[int, Query()] = 0,
    gpu_model: Annotated[list[str] | None, Query()] = None,
    region: Annotated[list[str] | None, Query()] = None,
    payment_token: str | None = None,
    provider: str | None = None,
    q: str | None = None,
    include_withdrawn: bool = False,
    budget: str | None = None,
    budget_raw: str | None = None,
    gpus: int | None = None,
) -> Response:
    state = web(request)
    token_address = checksum(payment_token, "payment_token") if payment_token else state.config.default_token
    token = state.tokens.get(token_address)
    raw_budget = None
    if budget_raw not in (None, ""):
        raw_budget = _int_param(request, "budget_raw")
    elif budget not in (None, ""):
        try:
            raw_budget = parse_amount(budget, int(token["decimals"]), "budget")
        except ValueError as exc:
            raise ApiError(400, str(exc), "budget") from None
    ranges = {name: value for name in RANGE_FILTERS if (value := _int_param(request, name)) is not None}
    query = MarketQuery(sort=sort, order=order, limit=limit, offset=offset, gpu_model=gpu_model or [],
                        region=region or [],
                        payment_token=checksum(payment_token, "payment_token") if payment_token else None,
                        provider=checksum(provider, "provider") if provider else None, q=q,
                        include_withdrawn=include_withdrawn, ranges=ranges, budget=raw_budget, gpus=gpus)
    db = state.db()
    try:
        total, rows = search_offers(db, query)
    except QueryError as exc:
        raise ApiError(400, str(exc), exc.field) from None
    items = [offer_json(r, state.tokens.get(r["payment_token"]), budget=raw_budget, gpus=gpus) for r in rows]
    return respond({"total": total, "offset": query.offset, "limit": query.limit, "sort": query.sort,
                    "order": query.order,
            "items": items, "facets": state.facets(), **_now(state)})


@router.get("/offers/{offer_id}")
def offer(request: Request, offer_id: int) -> Response:
    state = web(request)
    db = state.db()
    row = get_offer(db, offer_id)
    if row is None:
        raise ApiError(404, f"no offer {offer_id} in the index", "offer_id")
    out = offer_json(row, state.tokens.get(row["payment_token"]))
    counts = {int(s): int(n) for s, n in db.execute(
        "SELECT status, COUNT(*) FROM rentals WHERE offer_id=? GROUP BY status", (offer_id,)).fetchall()}
    out["rentals"] = {"open": counts.get(1, 0), "active": counts.get(2, 0), "total": sum(counts.values())}
    out["history"] = json.loads(row["history"])
    return respond({**out, **_now(state)})


@router.get("/gpu-models")
def gpu_models(request: Request) -> Response:
    state = web(request)
    on_chain = kv_get(state.db(), "gpu_models", {})
    items = []
    for model in GPU_MODELS:
        spec = on_chain.get(model.name) or {}
        items.append({"name": model.name, "power_limit_w": model.power_limit_w, "memory_mib": model.memory_mib,
                      "typical_power_w": int(getattr(model, "typical_power_w", None) or model.power_limit_w),
                      "registered": int(spec.get("powerLimitW", 0)) > 0})
    known = {m.name for m in GPU_MODELS}
    for name, spec in sorted(on_chain.items()):
        if name not in known:
            items.append({"name": name, "power_limit_w": int(spec["powerLimitW"]), "memory_mib": int(spec["memoryMib"]),
                          "typical_power_w": int(spec["powerLimitW"]) or None,
                          "registered": int(spec["powerLimitW"]) > 0})
    return respond({"items": items})
