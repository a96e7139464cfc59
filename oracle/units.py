"""Numbers as a person reads them: token amounts, times, durations, basis points, energy, carbon.

Pure functions over integers (the chain's own units, named in each argument), used by the CLI and
the web API. Money is never a float here: amounts go through :class:`decimal.Decimal` exactly.
``--json`` output keeps the raw integer and puts the string from here beside it as
``<field>_display`` (:func:`with_display`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any, Callable, Mapping

UINT256_MAX = 2**256 - 1

_SECONDS_PER = (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1))


def _exact(units: int, decimals: int) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 200
        return Decimal(int(units)).scaleb(-int(decimals))


def _plain(value: Decimal) -> str:
    """Exact decimal text with thousands separators and no trailing zeros: 1,234.5"""
    sign = "-" if value < 0 else ""
    text = f"{value.copy_abs():f}"  # copy_abs never rounds (abs() would, to 28 digits)
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    whole = f"{int(whole):,}"
    return sign + whole + ("." + frac if frac else "")


def _rounded(value: Decimal, places: int) -> str:
    with localcontext() as ctx:
        ctx.prec = 200
        q = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return _plain(q)


def _sig3(value: Decimal) -> str:
    """Three significant figures for values below 1,000; whole numbers above."""
    magnitude = abs(value)
    places = 0 if magnitude >= 100 else 1 if magnitude >= 10 else 2
    return _rounded(value, places)


def format_amount(units: int, decimals: int, symbol: str = "") -> str:
    """``12500000, 6, "tUSD"`` -> ``"12.5 tUSD"``: exact, trailing zeros trimmed, thousands separated."""
    text = _plain(_exact(units, decimals))
    return f"{text} {symbol}".rstrip() if symbol else text


def parse_amount(text: Any, decimals: int, what: str = "amount", *, max_units: int = UINT256_MAX) -> int:
    """``"12.5"`` in token units -> the integer in the token's smallest unit.

    Raises ``ValueError`` with a sentence naming ``what`` for text that is not a number, negative,
    not finite, finer than ``decimals`` allow, or above ``max_units`` (default: uint256).
    """
    raw = str(text).strip().replace("_", "").replace(",", "")
    if not raw:
        raise ValueError(f"{what}: give an amount, e.g. 12.5")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"{what}: {text!r} is not a number (write e.g. 12.5)") from None
    if not value.is_finite():
        raise ValueError(f"{what}: {text!r} is not a finite number")
    if value < 0:
        raise ValueError(f"{what}: {text!r} is negative; give an amount of 0 or more")
    if value.adjusted() > 100:
        raise ValueError(f"{what}: {text!r} is too large (at most {format_amount(max_units, decimals)})")
    with localcontext() as ctx:
        ctx.prec = 400
        scaled = value.scaleb(int(decimals))
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{what}: {text!r} has more than {decimals} decimals, the token's precision")
    units = int(scaled)
    if units > max_units:
        raise ValueError(f"{what}: {text!r} is too large (at most {format_amount(max_units, decimals)})")
    return units


def format_duration(seconds: int) -> str:
    """``12000`` -> ``"3 h 20 min"``: the two largest whole units (d, h, min, s), rounded down."""
    seconds = int(seconds)
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds == 0:
        return "0 s"
    parts: list[str] = []
    for name, size in _SECONDS_PER:
        if seconds >= size:
            count, seconds = divmod(seconds, size)
            parts.append(f"{count:,} {name}")
        elif parts:
            break  # never skip a unit: "1 h 5 s" would read as "1 h 5 min"
        if len(parts) == 2:
            break
    return " ".join(parts)


_DURATION_UNITS = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}


def parse_duration(text: Any, what: str = "duration") -> int:
    """``"3h20min"``, ``"2d"``, ``"90s"``, ``"1h 30m"`` or plain seconds (``"600"``) -> seconds.

    Raises ``ValueError`` with a sentence naming ``what`` for anything else (negative, empty,
    unknown unit, absurdly long).
    """
    import re

    raw = str(text).strip().lower().replace(" ", "")
    if raw.isdigit():
        seconds = int(raw)
    else:
        parts = re.findall(r"(\d+)([a-z]+)", raw)
        if not parts or "".join(n + u for n, u in parts) != raw or any(u not in _DURATION_UNITS for _, u in parts):
            raise ValueError(f"{what}: {text!r} is not a duration (write e.g. 90s, 20min, 3h, 2d or 1h30min)")
        seconds = sum(int(n) * _DURATION_UNITS[u] for n, u in parts)
    if seconds > 100 * 365 * 86_400:
        raise ValueError(f"{what}: {text!r} is longer than a century")
    return seconds


def format_time(unix_s: int, now_s: int) -> str:
    """``"2026-11-30 10:15 UTC (in 3 h 20 min)"`` or ``"... (5 min ago)"``; ``"never"`` for 0."""
    unix_s, now_s = int(unix_s), int(now_s)
    if unix_s == 0:
        return "never"
    try:
        stamp = datetime.fromtimestamp(unix_s, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        stamp = f"unix time {unix_s}"
    delta = unix_s - now_s
    if delta == 0:
        rel = "now"
    elif delta > 0:
        rel = f"in {format_duration(delta)}"
    else:
        rel = f"{format_duration(-delta)} ago"
    return f"{stamp} ({rel})"


def format_bps(bps: int) -> str:
    """Basis points as a percentage: ``250`` -> ``"2.5 %"``."""
    return f"{_plain(_exact(bps, 2))} %"


# (unit, base units in one of it), smallest first: a value is shown in the largest unit it reaches.
_ENERGY_UNITS = (("mJ", 1), ("J", 1_000), ("kJ", 1_000_000), ("kWh", 3_600_000_000), ("MWh", 3_600_000_000_000))
_CARBON_UNITS = (("mg", 1), ("g", 1_000), ("kg", 1_000_000), ("t", 1_000_000_000))


def _scaled(value: int, ladder: tuple[tuple[str, int], ...], suffix: str = "") -> str:
    """``value`` base units in the largest unit of ``ladder`` it reaches: whole base units
    below the first step, else three significant figures."""
    value = int(value)
    unit, size = ladder[0]
    for step_unit, step_size in ladder[1:]:
        if abs(value) < step_size:
            break
        unit, size = step_unit, step_size
    text = f"{value:,}" if size == 1 else _sig3(Decimal(value) / Decimal(size))
    return f"{text} {unit}{suffix}"


def format_energy(millijoules: int) -> str:
    """``4_428_000_000`` -> ``"1.23 kWh"``; ``35_900_000`` -> ``"35.9 kJ"`` (three significant figures)."""
    return _scaled(millijoules, _ENERGY_UNITS)


def format_carbon(milligrams: int) -> str:
    """``12_300`` -> ``"12.3 g CO2e"``; mg, g, kg or t by size (three significant figures)."""
    return _scaled(milligrams, _CARBON_UNITS, " CO2e")


def format_power_w(watts: int) -> str:
    """``350`` -> ``"350 W"``; ``2400`` -> ``"2.4 kW"``."""
    w = int(watts)
    if abs(w) < 1_000:
        return f"{w} W"
    return f"{_sig3(_exact(w, 3))} kW"


def format_gpu_hours(gpu_seconds: int) -> str:
    """``110`` -> ``"0.0306 GPU-h"``: GPU-seconds as GPU-hours to four decimals, zeros trimmed."""
    return f"{_rounded(Decimal(int(gpu_seconds)) / Decimal(3_600), 4)} GPU-h"


def with_display(data: Mapping[str, Any], formats: Mapping[str, Callable[[Any], str]]) -> dict[str, Any]:
    """``data`` with ``<field>_display`` beside each field named in ``formats`` (raw value kept).

    Fields absent from ``data`` or holding ``None`` get no display string.
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        out[key] = value
        fmt = formats.get(key)
        if fmt is not None and value is not None:
            out[f"{key}_display"] = fmt(value)
    return out
