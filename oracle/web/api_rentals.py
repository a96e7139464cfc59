"""GET /api/v1/rentals[...]: a rental, its chart series, settlements, receipt and slashes (WEB-API.md)."""

from __future__ import annotations

import json
import sqlite3
from typing import Annotated, Any

from fastapi import APIRouter, Response, Query, Request
from fastapi.responses import JSONResponse

from oracle.protocol import RentalStatus
from oracle.units import format_carbon, format_energy
from oracle.web.api_market import _now, web
from oracle.web.derive import bytes32_text, kv_get, typical_power_w
from oracle.web.errors import ApiError, checksum, respond
from oracle.web.state import WebState
from oracle.web.views import label, rental_json, report_json, series_points, settlement_json, slash_json

router = APIRouter(prefix="/api/v1")

SETTLEMENT_COLUMNS = "sequence, block, log_index, tx_hash, ts, payment, paid_after, method, submitter, report, signers"


def _status_code(text: str) -> int:
    if text.isdigit():
        return int(text)
    for member in RentalStatus:
        if text.lower() in (member.name.lower(), str(getattr(member, "label", "")).lower()):
            return int(member)
    raise ApiError(400, f"status: unknown rental status {text!r}", "status")


#: most chart points one series answer carries (evenly spaced settled reports, the last included)
MAX_POINTS = 2_000


def settlement_rows(db: sqlite3.Connection, rental_id: int, *, last: int | None = None,
                    from_sequence: int = 0) -> list[sqlite3.Row]:
    """The rental's settlements in sequence order: all, those from ``from_sequence`` on, or the ``last`` n."""
    if last is not None:
        rows = db.execute(f"SELECT {SETTLEMENT_COLUMNS} FROM settlements WHERE rental_id=? ORDER BY sequence DESC "
                          "LIMIT ?", (rental_id, last)).fetchall()
        return rows[::-1]
    return db.execute(f"SELECT {SETTLEMENT_COLUMNS} FROM settlements WHERE rental_id=? AND sequence>=? "
                      "ORDER BY sequence", (rental_id, from_sequence)).fetchall()


def evenly(rows: list[Any], most: int) -> list[Any]:
    """At most ``most`` of ``rows``, evenly spaced, keeping the last (cumulative values stay exact)."""
    if len(rows) <= most:
        return rows
    step = len(rows) / most
    picked = [rows[min(len(rows) - 1, int((i + 1) * step) - 1)] for i in range(most)]
    picked[-1] = rows[-1]
    return picked


def _series_input(rows: list[sqlite3.Row]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        report = json.loads(r["report"]) if r["report"] else None
        if report is not None:
            out.append({"period_end": int(report["periodEnd"]), "paid_after": int(r["paid_after"])})
    return out


def rental_out(state: WebState, row: sqlite3.Row, now_s: int) -> dict[str, Any]:
    data = json.loads(row["data"])
    token = state.tokens.get(data.get("payment_token"))
    terms = data.get("terms") or {}
    model = bytes32_text(terms["gpuModel"]) if terms.get("gpuModel") else ""
    power = typical_power_w(state.db(), model) if model else None
    rows = settlement_rows(state.db(), int(row["rental_id"]), last=11)  # the burn rate looks 10 back
    return rental_json(row, token, _series_input(rows), now_s, power)


def _rental_row(state: WebState, rental_id: int) -> sqlite3.Row:
    row = state.db().execute("SELECT * FROM rentals WHERE rental_id=?", (rental_id,)).fetchone()
    if row is None:
        raise ApiError(404, f"no rental {rental_id} in the index", "rental_id")
    return row


@router.get("/rentals")
def rentals(
    request: Request,
    renter: str | None = None,
    provider: str | None = None,
    offer_id: int | None = None,
    status: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    state = web(request)
    clauses, params = [], []
    if renter:
        clauses.append("renter=?")
        params.append(checksum(renter, "renter"))
    if provider:
        clauses.append("provider=?")
        params.append(checksum(provider, "provider"))
    if offer_id is not None:
        clauses.append("offer_id=?")
        params.append(offer_id)
    if status:
        codes = [_status_code(s) for s in status]
        clauses.append(f"status IN ({','.join('?' for _ in codes)})")
        params += codes
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    db = state.db()
    total = int(db.execute("SELECT COUNT(*) FROM rentals" + where, params).fetchone()[0])
    rows = db.execute(f"SELECT * FROM rentals{where} ORDER BY rental_id DESC LIMIT ? OFFSET ?",
                      [*params, limit, offset]).fetchall()
    clock = _now(state)
    return respond({"total": total, "offset": offset, "limit": limit,
            "items": [rental_out(state, r, clock["now"]) for r in rows], **clock})


@router.get("/rentals/{rental_id}")
def rental(request: Request, rental_id: int) -> Response:
    state = web(request)
    clock = _now(state)
    return respond({**rental_out(state, _rental_row(state, rental_id), clock["now"]), **clock})


@router.get("/rentals/{rental_id}/series")
def series(request: Request, rental_id: int, since_sequence: Annotated[int, Query(ge=0)] = 0,
           max_points: Annotated[int, Query(ge=2, le=MAX_POINTS)] = MAX_POINTS) -> Response:
    state = web(request)
    row = _rental_row(state, rental_id)
    data = json.loads(row["data"])
    started = int((data.get("chain") or {}).get("startedAt", 0))
    token = state.tokens.get(data.get("payment_token"))
    db = state.db()
    # the settled report at or before since_sequence is the baseline of the first new point's averages
    base = db.execute("SELECT MAX(sequence) FROM settlements WHERE rental_id=? AND sequence<=?",
                      (rental_id, since_sequence)).fetchone()[0]
    rows = settlement_rows(db, rental_id, from_sequence=int(base or 0))
    head = [r for r in rows if int(r["sequence"]) <= since_sequence]
    points = series_points(head + evenly([r for r in rows if int(r["sequence"]) > since_sequence], max_points),
                           started, token, since_sequence)
    return respond({"rental_id": rental_id, "started_at": started or None, "points": points, **_now(state)})


@router.get("/rentals/{rental_id}/settlements")
def settlements(request: Request, rental_id: int) -> Response:
    state = web(request)
    row = _rental_row(state, rental_id)
    token = state.tokens.get(json.loads(row["data"]).get("payment_token"))
    clock = _now(state)
    items = [settlement_json(r, token, clock["now"]) for r in settlement_rows(state.db(), rental_id)]
    return respond({"rental_id": rental_id, "items": items, **clock})


def receipt(state: WebState, rental_id: int) -> dict[str, Any]:
    row = _rental_row(state, rental_id)
    last = state.db().execute(f"SELECT {SETTLEMENT_COLUMNS} FROM settlements WHERE rental_id=? AND report IS NOT NULL "
                              "ORDER BY sequence DESC LIMIT 1", (rental_id,)).fetchone()
    if last is None:
        raise ApiError(404, f"rental {rental_id} has no settled report yet", "rental_id")
    data = json.loads(row["data"])
    chain, terms = data.get("chain") or {}, data.get("terms") or {}
    report = report_json(json.loads(last["report"]))
    signer_set = kv_get(state.db(), "signer_set", {}) or {}
    same_set = int(signer_set.get("version", -1)) == report["signer_set_version"]
    threshold = signer_set.get("threshold") if same_set else None
    return {
        "schema": "gpurent.receipt/1",
        "chain_id": state.config.chain_id, "market": state.config.market, "rental_id": rental_id,
        "renter": row["renter"], "provider": row["provider"],
        "gpu_model": bytes32_text(terms["gpuModel"]) if terms.get("gpuModel") else None,
        "gpu_count": int(chain.get("gpuCount", 0)),
        "region": bytes32_text(terms["region"]) if terms.get("region") else None,
        "started_at": int(chain.get("startedAt", 0)) or None,
        "period_end": report["period_end"], "sequence": report["sequence"],
        "available_gpu_seconds": report["available_gpu_seconds"], "busy_gpu_seconds": report["busy_gpu_seconds"],
        "energy_mj": report["energy_mj"], "energy_kwh_display": format_energy(report["energy_mj"]),
        "carbon_mg": report["carbon_mg"], "carbon_display": format_carbon(report["carbon_mg"]),
        "grid_intensity_g_per_kwh": int(terms.get("gridIntensityGPerKwh", 0)),
        "uptime_bps": report["uptime_bps"],
        "telemetry_hash": report["telemetry_hash"], "signer_set_version": report["signer_set_version"],
        "signers": json.loads(last["signers"] or "[]"), "threshold": threshold,
        "settlement_tx": last["tx_hash"], "block": int(last["block"]), "paid": int(last["paid_after"]),
        "status_label": label(RentalStatus, int(row["status"])),
    }


@router.get("/rentals/{rental_id}/receipt")
def receipt_route(request: Request, rental_id: int, download: bool = False) -> JSONResponse:
    body = receipt(web(request), rental_id)
    headers = {}
    if download:
        name = f"gpurent-receipt-{body['chain_id']}-{rental_id}.json"
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return JSONResponse(body, headers=headers)


@router.get("/rentals/{rental_id}/slashes")
def rental_slashes(request: Request, rental_id: int) -> Response:
    state = web(request)
    _rental_row(state, rental_id)
    clock = _now(state)
    rows = state.db().execute("SELECT * FROM slashes WHERE rental_id=? ORDER BY fault_id", (rental_id,)).fetchall()
    return respond({"items": [slash_json(r, state.tokens.get(r["token"]), clock["now"]) for r in rows], **clock})
