"""``gpurent market list``: offers with price, reputation, uptime and grid intensity."""

from __future__ import annotations

from typing import Any

import click

from oracle.actions import reads, views
from oracle.cli.common import (
    ChainOptions,
    GuardedGroup,
    Session,
    chain_options,
    console,
    print_json,
    table,
)

SORT_KEYS = {
    "price": lambda o: o["price_per_gpu_hour"],
    "reputation": lambda o: -o["reputation_score_bps"],
    "uptime": lambda o: -(o["avg_uptime_bps"] or 0),
    "grid": lambda o: o["grid_intensity_g_per_kwh"],
    "id": lambda o: o["offer_id"],
}


@click.group(cls=GuardedGroup)
def market() -> None:
    """Browse the market's offers."""


_TEXT_KEYS = {"gpu": "gpu_model", "gpu_model": "gpu_model", "model": "gpu_model", "region": "region",
              "provider": "provider"}
_NUMERIC = {"price": "price_per_gpu_hour", "grid": "grid_intensity_g_per_kwh", "reputation": "reputation_score_bps",
            "uptime": "avg_uptime_bps", "gpus": "gpu_count", "memory": "memory_mib"}
_FILTER_KEYS = "gpu, region, provider, price, grid, reputation, uptime, gpus, memory"


def _parse_filter(text: str) -> tuple[str, str, str]:
    """``KEY<op>VALUE`` checked whole (key known, value of the key's kind) before any chain read."""
    for op in ("<=", ">=", "=", "<", ">", "~"):
        if op in text:
            key, _, value = text.partition(op)
            key, value = key.strip().replace("-", "_"), value.strip()
            break
    else:
        raise click.BadParameter(f"{text!r}: expected KEY=VALUE, KEY<=VALUE, KEY>=VALUE or KEY~TEXT "
                                 f"(keys: {_FILTER_KEYS})", param_hint="--filter")
    if key not in _TEXT_KEYS and key not in _NUMERIC:
        raise click.BadParameter(f"unknown key {key!r} in {text!r} (keys: {_FILTER_KEYS})", param_hint="--filter")
    if not value:
        raise click.BadParameter(f"{text!r} has no value", param_hint="--filter")
    if key in _NUMERIC:
        if op == "~":
            raise click.BadParameter(f"{text!r}: ~ matches text; {key} takes =, <, >, <= or >=", param_hint="--filter")
        from oracle.cli.params import AMOUNT_OR_ZERO

        try:
            AMOUNT_OR_ZERO.convert(value, None, None)
        except click.BadParameter as exc:
            raise click.BadParameter(f"{text!r}: {exc.message}", param_hint="--filter") from None
        if key not in ("price", "reputation", "uptime") and "." in value:
            raise click.BadParameter(f"{text!r}: {key} is a whole number", param_hint="--filter")
    return key, op, value


def _matches(offer: dict[str, Any], flt: tuple[str, str, str], s: Session) -> bool:
    from decimal import Decimal

    key, op, value = flt
    if key in _TEXT_KEYS:
        field = _TEXT_KEYS[key]
        have = str(offer[field]).lower()
        want = value.lower()
        return want in have if op in ("~", "=") and field == "gpu_model" else have == want
    field = _NUMERIC[key]
    have = offer[field] if offer[field] is not None else 0
    want = s.parse(value, key, offer["payment_token"]) if field == "price_per_gpu_hour" else (
        int(Decimal(value) * 100) if field in ("reputation_score_bps", "avg_uptime_bps") else int(Decimal(value)))
    return {"=": have == want, "<": have < want, ">": have > want, "<=": have <= want,
            ">=": have >= want}[op]


@market.command("list")
@click.option("--filter", "filters", multiple=True, metavar="EXPR",
              help="e.g. gpu~H100, region=SE, price<=3, grid<=100, reputation>=50, uptime>=99 (repeatable)")
@click.option("--sort", type=click.Choice(sorted(SORT_KEYS)), default="price", show_default=True)
@click.option("--all", "include_inactive", is_flag=True, help="include withdrawn offers")
@chain_options
def list_offers(filters: tuple[str, ...], sort: str, include_inactive: bool, chain: ChainOptions) -> None:
    """List offers: price, GPU, provider reputation, uptime and proof-of-GPU challenge record, region and grid
    intensity."""
    parsed = [_parse_filter(f) for f in filters]
    s = Session(chain)
    count = reads.offer_count(s.ctx)
    reputations: dict[str, dict[str, Any]] = {}
    offers = []
    for listed in views.offers(s.ctx, include_inactive=include_inactive):
        offer = listed.as_dict()
        rep = reputations.get(offer["provider"])
        if rep is None:
            rep = reputations[offer["provider"]] = views.reputation(s.ctx, offer["provider"]).as_dict()
        offer["reputation_score_bps"] = rep["score_bps"]
        offer["avg_uptime_bps"] = rep["avg_uptime_bps"]
        offer["completed_rentals"] = rep["completed_rentals"]
        # proof-of-GPU record (issue 8), where the deployed market keeps one (absent: None)
        offer["challenges_passed"] = rep.get("challenges_passed")
        offer["challenges_failed"] = rep.get("challenges_failed")
        if all(_matches(offer, f, s) for f in parsed):
            offers.append(offer)
    offers.sort(key=SORT_KEYS[sort])
    if chain.as_json:
        print_json({"chain_id": s.chain_id, "market": s.deployment.market,
                    "offers": [_offer_json(s, o) for o in offers]})
        return
    if not offers:
        click.echo("no offers match" if count else "no offers listed yet")
        return
    from oracle.units import format_bps

    console().print(table(f"offers on chain {s.chain_id} (sorted by {sort})",
                          ["id", "GPU", "n", "price/GPU-h", "price/kWh", "reputation", "uptime", "rentals",
                           "challenges", "region", "gCO2e/kWh", "provider"],
                          [(o["offer_id"], o["gpu_model"], o["gpu_count"],
                            s.fmt(o["price_per_gpu_hour"], o["payment_token"]),
                            s.fmt(o["price_per_kwh"], o["payment_token"]), f"{o['reputation_score_bps'] / 100:.1f} / 100",
                            "-" if o["avg_uptime_bps"] is None else format_bps(o["avg_uptime_bps"]),
                            o["completed_rentals"], challenge_record(o), o["region"], o["grid_intensity_g_per_kwh"],
                            o["provider"][:10] + "…") for o in offers]))


def _offer_json(s: Session, o: dict[str, Any]) -> dict[str, Any]:
    """An offer with ``<field>_display`` strings beside its raw integers (SPEC-R4 §3)."""
    from oracle.units import format_bps, format_duration, with_display

    token = o["payment_token"]
    return with_display(o, {
        "price_per_gpu_hour": lambda v: f"{s.fmt(v, token)}/GPU-h",
        "price_per_kwh": lambda v: f"{s.fmt(v, token)}/kWh",
        "min_uptime_bps": format_bps, "avg_uptime_bps": format_bps, "reputation_score_bps": format_bps,
        "max_duration_seconds": format_duration, "max_gap_seconds": format_duration,
        "grid_intensity_g_per_kwh": lambda v: f"{v} gCO2e/kWh", "memory_mib": lambda v: f"{v:,} MiB"})


def challenge_record(offer: dict[str, Any]) -> str:
    """The provider's proof-of-GPU record as market list shows it: passed / failed, "-" where the
    market keeps none."""
    if offer.get("challenges_passed") is None:
        return "-"
    return f"{offer['challenges_passed']} ok / {offer['challenges_failed']} failed"


def onchain_models(s: Session) -> list[dict[str, Any]]:
    """The market's GPU model table as it stands, from its ``GpuModelSet`` events."""
    from oracle.cli.common import bytes32_text

    latest: dict[bytes, Any] = {}
    for log in s.market.contract.events.GpuModelSet.get_logs(from_block=s.deployment.block_number):
        latest[bytes(log["args"]["model"])] = log["args"]
    return [{"model": bytes32_text(model), "power_limit_w": int(args["powerLimitW"]),
             "memory_mib": int(args["memoryMib"])}
            for model, args in sorted(latest.items()) if int(args["powerLimitW"]) > 0]


@market.command("models")
@chain_options
def models(chain: ChainOptions) -> None:
    """The GPU models offers may use (the market's on-chain table): power limit and memory."""
    from oracle.units import format_power_w, with_display

    s = Session(chain)
    rows = onchain_models(s)
    if chain.as_json:
        print_json({"chain_id": s.chain_id, "models": [with_display(r, {"power_limit_w": format_power_w,
                                                                        "memory_mib": _mib}) for r in rows]})
        return
    if not rows:
        click.echo("no GPU models registered (`gpurent governance set-gpu-model`)")
        return
    console().print(table(f"GPU models on chain {s.chain_id}", ["model", "power limit", "memory"],
                          [(r["model"], format_power_w(r["power_limit_w"]), _mib(r["memory_mib"])) for r in rows]))


def _mib(mib: int) -> str:
    return f"{mib:,} MiB ({mib / 1024:.0f} GiB)"
