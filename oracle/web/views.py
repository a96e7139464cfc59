"""JSON shapes of the web API (WEB-API.md): raw integers with ``<field>_display`` strings beside them.

Pure over index rows and a token table; the numbers are the chain's (as indexed), and the
display strings come from :mod:`oracle.units`.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Callable, Mapping

from oracle.protocol import EndReason, FaultKind, RentalStatus
from oracle.units import (format_amount, format_bps, format_carbon, format_duration, format_energy,
                          format_gpu_hours, format_power_w, format_time)
from oracle.web.derive import bytes32_text
from oracle.web.market import rep_of

Token = Mapping[str, Any]  # {"address","symbol","decimals"}


def memory_display(mib: int) -> str:
    return f"{mib / 1024:.1f} GiB"


def amount_fmt(token: Token) -> Callable[[int], str]:
    return lambda units: format_amount(int(units), int(token["decimals"]), str(token["symbol"]))


def with_displays(data: dict[str, Any], formats: Mapping[str, Callable[[Any], str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        out[key] = value
        fmt = formats.get(key)
        if fmt is not None and value is not None:
            out[f"{key}_display"] = fmt(value)
    return out


def label(enum: Any, value: int) -> str:
    try:
        member = enum(int(value))
    except ValueError:
        return str(value)
    return str(getattr(member, "label", member.name.lower()))


# ---------------------------------------------------------------------- reputation / provider stats
def reputation_json(rep: Mapping[str, Any] | None, score: int | None) -> dict[str, Any]:
    rep = rep or {}
    return {
        "score_bps": int(score or 0),
        "score_bps_display": f"{int(score or 0) / 100:.2f} / 100",
        "completed_rentals": int(rep.get("completedRentals", 0)),
        "abandoned_rentals": int(rep.get("abandonedRentals", 0)),
        "slash_count": int(rep.get("slashCount", 0)),
        "attested_gpu_seconds": int(rep.get("attestedGpuSeconds", 0)),
        "attested_gpu_seconds_display": format_gpu_hours(int(rep.get("attestedGpuSeconds", 0))),
        "fees_paid": int(rep.get("feesPaid", 0)),
        "delivered_fees": int(rep.get("deliveredFees", 0)),
        "abandoned_collateral": int(rep.get("abandonedCollateral", 0)),
        "slashed_amount": int(rep.get("slashedAmount", 0)),
        # the challenge record of finalized rentals, where the contract keeps one (null before it did)
        "challenges_passed": None if "challengesPassed" not in rep else int(rep["challengesPassed"]),
        "challenges_failed": None if "challengesFailed" not in rep else int(rep["challengesFailed"]),
    }


def verification_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "challenges_passed": int(row["ch_pass"] or 0),
        "challenges_failed": int(row["ch_fail"] or 0),
        "settled_reports": int(row["settled_reports"] or 0),
        "slash_count": int(row["slash_count"] or 0),
        "rentals": int(row["p_rentals"] if "p_rentals" in row.keys() else row["rentals"] or 0),
    }


def uptime_json(uptime: int | None) -> dict[str, Any]:
    return {"uptime_bps": uptime, **({"uptime_bps_display": format_bps(uptime)} if uptime is not None else {})}


# ---------------------------------------------------------------------- offers
def budget_hours(budget: int, eff_per_gpu_hour: int | None, gpus: int) -> dict[str, Any] | None:
    if not eff_per_gpu_hour or gpus <= 0:
        return None
    hours_x100 = budget * 100 // (eff_per_gpu_hour * gpus)
    return {"hours_x100": hours_x100, "gpus": gpus,
            "display": f"about {hours_x100 // 100:,}.{hours_x100 % 100:02d} h"}


def offer_json(row: Mapping[str, Any], token: Token, *, budget: int | None = None,
               gpus: int | None = None) -> dict[str, Any]:
    money = amount_fmt(token)
    power = row["typical_power_w"]
    eff = int(row["eff"]) if row["eff"] is not None else None
    gpu_count = int(row["gpu_count"])
    out = with_displays({
        "offer_id": int(row["offer_id"]),
        "provider": row["provider"],
        "active": bool(row["active"]),
        "version": int(row["version"]),
        "agent": row["agent"],
        "gpu_model": row["gpu_model"],
        "gpu_count": gpu_count,
        "memory_mib": int(row["memory_mib"]),
        "payment_token": dict(token),
        "price_per_gpu_hour": int(row["price_gpu_hour"]),
        "price_per_kwh": int(row["price_kwh"]),
        "typical_power_w": power,
        "effective_price_per_gpu_hour": eff,
        "effective_price_per_hour": None if eff is None else eff * gpu_count,
        "region": row["region"],
        "grid_intensity_g_per_kwh": int(row["grid"]),
        "carbon_per_gpu_hour_mg": None if power is None else int(row["grid"]) * int(power),
        "max_duration_s": int(row["max_duration"]),
        "min_uptime_bps": int(row["min_uptime"]),
        "max_gap_s": int(row["max_gap"]),
    }, {
        "memory_mib": memory_display, "price_per_gpu_hour": money, "price_per_kwh": money,
        "typical_power_w": format_power_w, "effective_price_per_gpu_hour": money, "effective_price_per_hour": money,
        "grid_intensity_g_per_kwh": lambda g: f"{g} gCO2e/kWh", "carbon_per_gpu_hour_mg": format_carbon,
        "max_duration_s": format_duration, "min_uptime_bps": format_bps, "max_gap_s": format_duration,
    })
    out["reputation"] = reputation_json(rep_of(row), row["score_bps"])
    uptime = row["uptime_bps"]
    out.update(uptime_json(None if uptime is None or int(uptime) < 0 else int(uptime)))
    out["verification"] = verification_json(row)
    if budget is not None:
        out["budget_hours"] = budget_hours(budget, eff, min(gpus or gpu_count, gpu_count))
    out["created_tx"] = row["created_tx"]
    out["created_block"] = row["created_block"]
    return out


# ---------------------------------------------------------------------- rentals
def burn(chain: Mapping[str, Any], settlements: list[Mapping[str, Any]], power_w: int | None) -> tuple[int, int, str]:
    """(numerator, denominator, basis): the rental's spend in token units per second as a fraction."""
    if len(settlements) >= 2:
        last, first = settlements[-1], settlements[max(0, len(settlements) - 11)]
        dt = int(last["period_end"]) - int(first["period_end"])
        dp = int(last["paid_after"]) - int(first["paid_after"])
        if dt > 0 and dp > 0:
            return dp, dt, "observed"
    gpus = int(chain.get("gpuCount", 0))
    per_gpu = int(chain.get("pricePerGpuHour", 0)) + int(chain.get("pricePerKwh", 0)) * int(power_w or 0) // 1000
    per_hour = gpus * per_gpu
    return per_hour, 3600, "list price at typical power"


def rental_json(row: sqlite3.Row, token: Token, settlements: list[Mapping[str, Any]], now_s: int,
                power_w: int | None) -> dict[str, Any]:
    data = json.loads(row["data"])
    chain = data.get("chain") or {}
    terms = data.get("terms") or {}
    report = data.get("last_report") or {}
    events = data.get("events") or {}
    money = amount_fmt(token)
    status = int(row["status"])
    budget, paid = int(chain.get("budget", 0)), int(chain.get("paid", 0))
    remaining = max(0, budget - paid)
    started, ended = int(chain.get("startedAt", 0)), int(chain.get("endedAt", 0))
    num, den, basis = burn(chain, settlements, power_w)
    runs_out_at = runs_out_in = None
    max_end_at = started + int(chain.get("maxDurationSeconds", 0)) if started else None
    ends_by = None
    if status == int(RentalStatus.ACTIVE) and num > 0:
        since = int(report.get("periodEnd", 0)) or started
        runs_out_at = since + remaining * den // num
        runs_out_in = max(0, runs_out_at - now_s)
        ends_by = "budget" if max_end_at is None or runs_out_at <= max_end_at else "max_duration"
    end_end = ended or int(chain.get("lastSettledAt", 0))
    rented = int(chain.get("gpuCount", 0)) * max(0, end_end - started) if started else 0
    uptime = min(10_000, int(chain.get("availableGpuSeconds", 0)) * 10_000 // rented) if rented else None
    fin = events.get("finalized") or {}
    out = with_displays({
        "rental_id": int(row["rental_id"]),
        "offer_id": int(row["offer_id"]),
        "status": status,
        "renter": row["renter"],
        "provider": row["provider"],
        "gpu_model": bytes32_text(terms["gpuModel"]) if terms.get("gpuModel") else None,
        "gpu_count": int(chain.get("gpuCount", 0)),
        "region": bytes32_text(terms["region"]) if terms.get("region") else None,
        "grid_intensity_g_per_kwh": int(terms.get("gridIntensityGPerKwh", 0)),
        "payment_token": dict(token),
        "price_per_gpu_hour": int(chain.get("pricePerGpuHour", 0)),
        "price_per_kwh": int(chain.get("pricePerKwh", 0)),
        "budget": budget, "paid": paid, "remaining": remaining, "claimed": int(chain.get("claimed", 0)),
        "fee_bps": int(chain.get("feeBps", 0)),
        "opened_at": (data.get("opened") or {}).get("timestamp"),
        "start_deadline": int(chain.get("startDeadline", 0)) or None,
        "started_at": started or None,
        "ended_at": ended or None,
        "end_reason": int(chain.get("endReason", 0)),
        "max_end_at": max_end_at,
        "finalized_at": fin.get("timestamp"),
        "refund": fin.get("refund"), "fee": fin.get("fee"), "abandoned": fin.get("abandoned"),
        "last_sequence": int(chain.get("sequence", 0)),
        "last_settled_at": int(chain.get("lastSettledAt", 0)) or None,
        "available_gpu_seconds": int(chain.get("availableGpuSeconds", 0)),
        "busy_gpu_seconds": int(report.get("busyGpuSeconds", 0)),
        "energy_mj": int(report.get("energyMillijoules", 0)),
        "carbon_mg": int(report.get("carbonMilligrams", 0)),
        "uptime_bps": uptime,
        "challenges_passed": int(report.get("challengesPassed", 0)),
        "challenges_failed": int(report.get("challengesFailed", 0)),
        "collateral": int(chain.get("collateral", 0)),
        "slashed": int(chain.get("slashed", 0)),
        "runs_out_at": runs_out_at,
        "runs_out_in_s": runs_out_in,
    }, {
        "price_per_gpu_hour": money, "price_per_kwh": money, "budget": money, "paid": money, "remaining": money,
        "claimed": money, "fee_bps": format_bps, "refund": money, "fee": money,
        "opened_at": lambda t: format_time(t, now_s), "start_deadline": lambda t: format_time(t, now_s),
        "started_at": lambda t: format_time(t, now_s), "ended_at": lambda t: format_time(t, now_s),
        "max_end_at": lambda t: format_time(t, now_s), "finalized_at": lambda t: format_time(t, now_s),
        "last_settled_at": lambda t: format_time(t, now_s),
        "available_gpu_seconds": format_gpu_hours, "busy_gpu_seconds": format_gpu_hours,
        "energy_mj": format_energy, "carbon_mg": format_carbon, "uptime_bps": format_bps,
        "runs_out_at": lambda t: format_time(t, now_s), "runs_out_in_s": format_duration,
        "grid_intensity_g_per_kwh": lambda g: f"{g} gCO2e/kWh",
    })
    out["status_label"] = label(RentalStatus, status)
    out["end_reason_label"] = label(EndReason, out["end_reason"]) if out["end_reason"] else ""
    per_hour = num * 3600 // den if den else 0
    out["burn"] = {"per_hour": per_hour, "per_hour_display": f"{money(per_hour)}/h", "basis": basis}
    out["ends_by"] = ends_by
    txs = dict(data.get("txs") or {})
    out["txs"] = {k: txs.get(k) for k in ("opened", "started", "ended", "finalized", "cancelled")}
    out["txs"]["top_ups"] = txs.get("top_ups", [])
    out["workload_hash"] = terms.get("workloadHash")
    return out


def settlement_json(row: Mapping[str, Any], token: Token, now_s: int) -> dict[str, Any]:
    money = amount_fmt(token)
    report = json.loads(row["report"]) if row["report"] else None
    out = with_displays({
        "sequence": int(row["sequence"]), "payment": int(row["payment"]), "paid_after": int(row["paid_after"]),
        "tx_hash": row["tx_hash"], "block": int(row["block"]), "timestamp": row["ts"],
    }, {"payment": money, "paid_after": money, "timestamp": lambda t: format_time(t, now_s)})
    out["submitter"] = row["submitter"]
    out["method"] = row["method"]
    out["report"] = None if report is None else report_json(report)
    out["signers"] = json.loads(row["signers"] or "[]")
    return out


def report_json(report: Mapping[str, Any]) -> dict[str, Any]:
    return with_displays({
        "rental_id": int(report["rentalId"]), "sequence": int(report["sequence"]),
        "period_end": int(report["periodEnd"]), "available_gpu_seconds": int(report["availableGpuSeconds"]),
        "busy_gpu_seconds": int(report["busyGpuSeconds"]), "energy_mj": int(report["energyMillijoules"]),
        "carbon_mg": int(report["carbonMilligrams"]), "uptime_bps": int(report["uptimeBps"]),
        "fault_flags": int(report["faultFlags"]), "challenges_passed": int(report["challengesPassed"]),
        "challenges_failed": int(report["challengesFailed"]), "telemetry_hash": report["telemetryHash"],
        "signer_set_version": int(report["signerSetVersion"]),
    }, {"available_gpu_seconds": format_gpu_hours, "busy_gpu_seconds": format_gpu_hours,
        "energy_mj": format_energy, "carbon_mg": format_carbon, "uptime_bps": format_bps})


def series_points(rows: list[Mapping[str, Any]], started_at: int, token: Token,
                  since_sequence: int = 0) -> list[dict[str, Any]]:
    """Chart points from the settled cumulative reports: averages over each interval between them."""
    money = amount_fmt(token)
    out = []
    prev = {"period_end": started_at, "available": 0, "busy": 0, "energy": 0}
    for row in rows:
        report = json.loads(row["report"]) if row["report"] else None
        if report is None:
            continue
        cur = {"period_end": int(report["periodEnd"]), "available": int(report["availableGpuSeconds"]),
               "busy": int(report["busyGpuSeconds"]), "energy": int(report["energyMillijoules"])}
        dt = cur["period_end"] - prev["period_end"]
        d_avail = cur["available"] - prev["available"]
        point = with_displays({
            "sequence": int(row["sequence"]), "period_end": cur["period_end"],
            "elapsed_s": cur["period_end"] - started_at,
            "available_gpu_seconds": cur["available"], "busy_gpu_seconds": cur["busy"],
            "energy_mj": cur["energy"], "carbon_mg": int(report["carbonMilligrams"]),
            "uptime_bps": int(report["uptimeBps"]), "paid": int(row["paid_after"]), "payment": int(row["payment"]),
            "power_w": (cur["energy"] - prev["energy"]) // (dt * 1000) if dt > 0 else None,
            "utilization_bps": (cur["busy"] - prev["busy"]) * 10_000 // d_avail if d_avail > 0 else None,
        }, {"elapsed_s": format_duration, "available_gpu_seconds": format_gpu_hours,
            "busy_gpu_seconds": format_gpu_hours, "energy_mj": format_energy, "carbon_mg": format_carbon,
            "uptime_bps": format_bps, "paid": money, "payment": money, "power_w": format_power_w,
            "utilization_bps": format_bps})
        prev = cur
        if point["sequence"] > since_sequence:
            out.append(point)
    return out


def slash_json(row: Mapping[str, Any], token: Token, now_s: int) -> dict[str, Any]:
    fault = json.loads(row["fault"]) if row["fault"] else {}
    out = with_displays({
        "rental_id": int(row["rental_id"]), "fault_id": int(row["fault_id"]), "kind": int(row["kind"]),
        "amount": int(row["amount"]), "observed_at": fault.get("observedAt"), "block": int(row["block"]),
        "timestamp": row["ts"],
    }, {"amount": amount_fmt(token), "observed_at": lambda t: format_time(t, now_s),
        "timestamp": lambda t: format_time(t, now_s)})
    out["kind_label"] = label(FaultKind, out["kind"])
    out["token"] = dict(token)
    out["evidence_hash"] = fault.get("evidenceHash")
    out["signers"] = fault.get("signers", [])
    out["tx_hash"] = row["tx_hash"]
    return out
