"""Rentals and offers as a person reads them: amounts in the token with its symbol, times as dates
with "in 3 h 20 min", durations, percentages; and ``--json`` with ``<field>_display`` strings beside
the raw integers (SPEC-R4 §3). Plus ``--watch`` for the status commands."""

from __future__ import annotations

import time
from typing import Any, Callable

import click

from oracle.cli.params import FiniteFloat
from oracle.units import (
    format_amount,
    format_bps,
    format_carbon,
    format_duration,
    format_energy,
    format_gpu_hours,
    format_power_w,
    format_time,
    with_display,
)


def when(unix_s: int) -> str:
    """A chain time as a date with how far it is from now: "2026-11-30 12:55 UTC (in 3 h 20 min)"."""
    return format_time(int(unix_s), int(time.time()))


def rental_json(r: dict[str, Any], now_s: int | None = None) -> dict[str, Any]:
    """A rental view's dict with display strings beside its amounts, times and rates."""
    now = int(time.time()) if now_s is None else now_s
    decimals, symbol = int(r.get("payment_token_decimals", 18)), str(r.get("payment_token_symbol", ""))

    def amount(units: Any) -> str:
        return format_amount(int(units), decimals, symbol)

    def when(unix_s: Any) -> str:
        return format_time(int(unix_s), now)

    out = with_display(r, {
        "budget": amount, "paid": amount, "remaining": amount, "budget_left": amount, "claimed": amount,
        "collateral": amount, "slashed": amount,
        "price_per_gpu_hour": lambda v: f"{amount(v)}/GPU-h", "price_per_kwh": lambda v: f"{amount(v)}/kWh",
        "fee_bps": format_bps, "uptime_bps": format_bps, "available_gpu_seconds": format_gpu_hours,
        "power_limit_w": format_power_w, "max_duration_seconds": format_duration,
        "start_deadline": when, "started_at": when, "ended_at": when, "last_settled_at": when, "runs_out_at": when,
        "energy_millijoules": format_energy, "carbon_milligrams": format_carbon,
    })
    usage = r.get("settled_usage")
    if isinstance(usage, dict):
        out["settled_usage"] = with_display(usage, {
            "energy_millijoules": format_energy, "carbon_milligrams": format_carbon, "uptime_bps": format_bps,
            "available_gpu_seconds": format_gpu_hours, "busy_gpu_seconds": format_gpu_hours, "period_end": when})
    return out


def rental_row(r: dict[str, Any], now_s: int) -> tuple[str, ...]:
    """One line of `rent list` / `provider rentals`: id, status, GPUs, budget, when."""
    d = rental_json(r, now_s)
    status = r["status"] + (f" ({r['end_reason']})" if r.get("end_reason") not in (None, "None") else "")
    if r["status"] == "Open":
        when = f"start by {d['start_deadline_display']}"
    elif r["status"] == "Active":
        when = (f"started {d['started_at_display']}; budget lasts to {d['runs_out_at_display']}"
                if r.get("runs_out_at") else f"started {d['started_at_display']}")
    elif r.get("ended_at"):
        when = f"ended {d['ended_at_display']}"
    else:
        when = "-"
    return (str(r["rental_id"]), status, str(r["offer_id"]), str(r["gpu_count"]),
            f"{d['remaining_display']} of {d['budget_display']}", d["paid_display"], when)


RENTAL_COLUMNS = ("id", "status", "offer", "GPUs", "budget left", "paid", "when")


def watch_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--watch [SECONDS]``: redraw every SECONDS (default 5) until Ctrl-C."""
    return click.option("--watch", "watch_s", type=FiniteFloat(0.5, 3600), is_flag=False, flag_value=5.0,
                        default=None, metavar="[SECONDS]",
                        help="redraw every SECONDS (default 5) until Ctrl-C")(fn)


def watching(watch_s: float | None, render: Callable[[], None]) -> None:
    """``render()`` once, or (``--watch``) again every ``watch_s`` seconds until interrupted."""
    if watch_s is None:
        render()
        return
    from oracle.cli.output import console

    con = console()
    try:
        while True:
            if con.is_terminal:
                con.clear()
            render()
            if not con.is_terminal:
                click.echo(f"-- refreshed {time.strftime('%H:%M:%S')}; every {watch_s:g} s until Ctrl-C", err=True)
            time.sleep(watch_s)
    except KeyboardInterrupt:
        return
