"""GET /api/v1/network: nodes' health (live /healthz), signer set, params, tokens, governance (WEB-API.md)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from eth_abi import decode as abi_decode
from fastapi import APIRouter, Response, Request

from oracle.chain.artifacts import load_abi
from oracle.chain.errors import _abi_type
from oracle.redact import redact
from oracle.units import format_bps, format_duration, format_time
from oracle.web.api_market import _now, web
from oracle.web.derive import kv_get
from oracle.web.errors import respond
from oracle.web.state import WebState
from oracle.web.views import amount_fmt, with_displays

router = APIRouter(prefix="/api/v1")

HEALTH_TIMEOUT_S = 2.0
HEALTH_CACHE_S = 5.0
_health_cache: dict[str, tuple[float, dict[str, Any]]] = {}
_health_lock = threading.Lock()


def node_health(url: str) -> dict[str, Any]:
    """The node's own /healthz answer (cached a few seconds), or why it did not answer."""
    now = time.monotonic()
    with _health_lock:
        cached = _health_cache.get(url)
    if cached is not None and now - cached[0] < HEALTH_CACHE_S:
        return cached[1]
    started = time.monotonic()
    out: dict[str, Any] = {"url": url, "ok": False, "http_status": None, "latency_ms": None, "health": None,
                           "signer": None, "error": None}
    try:
        resp = httpx.get(url.rstrip("/") + "/healthz", timeout=HEALTH_TIMEOUT_S)
        out["latency_ms"] = int((time.monotonic() - started) * 1000)
        out["http_status"] = resp.status_code
        try:
            body = resp.json()
        except ValueError:
            body = None
        out["health"] = body
        out["ok"] = resp.status_code == 200 and isinstance(body, dict) and body.get("status") == "ok"
        out["signer"] = body.get("signer") if isinstance(body, dict) else None
        if not out["ok"]:
            out["error"] = (body or {}).get("detail") if isinstance(body, dict) else f"HTTP {resp.status_code}"
    except httpx.HTTPError as exc:
        out["error"] = redact(f"{type(exc).__name__}: {exc}")[:200]
    with _health_lock:
        _health_cache[url] = (time.monotonic(), out)
    return out


_PARAM_FIELDS = {  # contract name -> (api name, format)
    "treasury": ("treasury", None), "protocolFeeBps": ("protocol_fee_bps", format_bps),
    "renterSlashShareBps": ("renter_slash_share_bps", format_bps), "slashBps": ("slash_bps", format_bps),
    "startTimeout": ("start_timeout_s", format_duration), "silenceTimeout": ("silence_timeout_s", format_duration),
    "settlementGrace": ("settlement_grace_s", format_duration),
    "unbondingDelay": ("unbonding_delay_s", format_duration),
    "maxRentalDuration": ("max_rental_duration_s", format_duration),
    "slashWindowSeconds": ("slash_window_s", format_duration), "reputationPrior": ("reputation_prior", None),
}


def params_json(state: WebState, params: dict[str, Any] | None) -> dict[str, Any] | None:
    if not params:
        return None
    data = {api: params.get(name) for name, (api, _) in _PARAM_FIELDS.items()}
    formats = {api: fmt for _, (api, fmt) in _PARAM_FIELDS.items() if fmt is not None}
    token = state.tokens.get(state.config.default_token)
    formats["reputation_prior"] = amount_fmt(token)
    return with_displays(data, formats)


def _decode_call(data_hex: str) -> tuple[str | None, dict[str, Any]]:
    """A timelock operation's calldata against the market ABI: (function, args) or (None, {})."""
    try:
        data = bytes.fromhex(data_hex[2:])
        for item in _market_functions():
            if item[0] == data[:4]:
                _, name, inputs = item
                values = abi_decode([_abi_type(p) for p in inputs], data[4:])
                from oracle.web.decode import jsonable

                return name, {p["name"] or f"arg{i}": jsonable(v, p) for i, (p, v) in enumerate(zip(inputs, values))}
    except Exception:
        pass
    return None, {}


_FUNCTIONS: list[tuple[bytes, str, list[dict[str, Any]]]] = []


def _market_functions() -> list[tuple[bytes, str, list[dict[str, Any]]]]:
    if not _FUNCTIONS:
        from web3 import Web3

        for item in load_abi("GpuRentMarket"):
            if item.get("type") == "function":
                sig = f"{item['name']}({','.join(_abi_type(p) for p in item['inputs'])})"
                _FUNCTIONS.append((bytes(Web3.keccak(text=sig))[:4], item["name"], item["inputs"]))
    return _FUNCTIONS


def timelock_json(state: WebState, now_s: int) -> dict[str, Any] | None:
    if not state.config.timelock:
        return None
    db = state.db()
    rows = db.execute("SELECT * FROM timelock_ops ORDER BY block DESC").fetchall()
    pending, done = [], []
    for r in rows:
        function, args = _decode_call(r["data"] or "0x")
        ready_at = r["ready_at"]
        state_label = r["state"]
        if state_label == "pending":
            state_label = "ready" if ready_at is not None and ready_at <= now_s else "waiting"
        item = with_displays({"id": r["id"], "target": r["target"], "function": function, "args": args,
                              "calldata": r["data"], "delay_s": r["delay"], "ready_at": ready_at,
                              "state": state_label, "scheduled_tx": r["scheduled_tx"], "done_tx": r["done_tx"]},
                             {"ready_at": lambda t: format_time(t, now_s), "delay_s": format_duration})
        (pending if r["state"] == "pending" else done).append(item)
    min_delay = kv_get(db, "timelock_min_delay")
    return {"address": state.config.timelock, "min_delay_s": min_delay, "pending": pending, "done": done[:20]}


@router.get("/network")
def network(request: Request) -> Response:
    state = web(request)
    clock = _now(state)
    db = state.db()
    signer_set = kv_get(db, "signer_set") or {}
    nodes = []
    if state.config.nodes:
        with ThreadPoolExecutor(max_workers=min(8, len(state.config.nodes))) as pool:
            nodes = list(pool.map(node_health, state.config.nodes))
    signers = list(signer_set.get("signers", []))
    by_signer = {n["signer"].lower(): n["url"] for n in nodes if n.get("signer")}
    for n in nodes:
        n["in_signer_set"] = bool(n.get("signer")) and n["signer"].lower() in {s.lower() for s in signers}
    previous = kv_get(db, "previous_signer_set")
    overlap = kv_get(db, "signer_set_overlap")
    payment = kv_get(db, "payment_tokens", {})
    stake = kv_get(db, "stake_tokens", {})
    registry = kv_get(db, "operator_registry")
    return respond({
        "nodes": nodes,
        "signer_set": {"version": signer_set.get("version"), "threshold": signer_set.get("threshold"),
                       "signers": [{"address": s, "node_url": by_signer.get(s.lower())} for s in signers],
                       "overlap_s": overlap, "previous": previous, "tx_hash": signer_set.get("tx_hash")},
        "params": params_json(state, kv_get(db, "params")),
        "payment_tokens": [{**state.tokens.get(a), "allowed": bool(v)} for a, v in payment.items()],
        "stake_tokens": [{**state.tokens.get(a), "min_stake_per_gpu": int(v),
                          "min_stake_per_gpu_display": amount_fmt(state.tokens.get(a))(int(v))}
                         for a, v in stake.items()],
        "gpu_models": [{"name": k, "power_limit_w": v["powerLimitW"], "memory_mib": v["memoryMib"]}
                       for k, v in sorted(kv_get(db, "gpu_models", {}).items())],
        "operator_registry": registry,
        "timelock": timelock_json(state, clock["now"]),
        **clock,
    })
