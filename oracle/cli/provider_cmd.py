"""``gpurent provider``: stake, unstake, offers, starting and finalizing rentals, earnings, status."""

from __future__ import annotations

from typing import Any

import click

from oracle.actions import offers as offer_actions
from oracle.actions import reads, rentals, staking, views
from oracle.actions.tokens import balance_of
from oracle.cli.common import (
    ADDRESS,
    ChainOptions,
    GuardedGroup,
    OperationFailed,
    Session,
    WalletSpec,
    chain_options,
    console,
    gpu_model_arg,
    kv_table,
    print_json,
    print_result,
    rental_view,
    signing_session,
    table,
    text_bytes32,
    wallet_options,
)
from oracle.cli.display import watch_option, watching, when
from oracle.cli.params import AMOUNT, AMOUNT_OR_ZERO, ID, NAME32, UINT72_MAX, URL, uint
from oracle.cli.options import to_option
from oracle.cli.rent_cmd import finalize_rental, withdraw_balance


@click.group(cls=GuardedGroup)
def provider() -> None:
    """For GPU owners: stake, list offers, start rentals, withdraw earnings."""


@provider.command()
@click.argument("amount", type=AMOUNT)
@click.option("--no-approve", is_flag=True, help="fail instead of approving the market to pull the tokens")
@chain_options
@wallet_options
def stake(amount: str, no_approve: bool, chain: ChainOptions, wallet: WalletSpec) -> None:
    """Stake AMOUNT of the market's stake token (in token units, e.g. 2000)."""
    s = signing_session(chain, wallet)
    token = s.ctx.stake_token
    units = s.parse(amount, "AMOUNT", token)
    staked = staking.stake(s.require_signer(), units, approve=not no_approve)
    line = f"staked {s.fmt(units, token)}; active stake {s.fmt(staked.active_stake, token)} (tx {staked.done.tx_hash})"
    if staked.done.resumed:
        line += " [sent by an earlier, interrupted run: not sent again]"
    print_result(chain, s.shown({**staked.done.tx_out(), "approve_tx": staked.approve_tx, "staked": units,
                                 "active_stake": staked.active_stake}, token, ("staked", "active_stake")), line)


@provider.command()
@click.argument("amount", type=AMOUNT, required=False)
@click.option("--complete", is_flag=True, help="withdraw stake whose unbonding delay has passed")
@to_option
@chain_options
@wallet_options
def unstake(amount: str | None, complete: bool, to: str | None, chain: ChainOptions, wallet: WalletSpec) -> None:
    """Move AMOUNT of active stake into unbonding; with --complete, take back unbonded stake."""
    s = signing_session(chain, wallet)
    token = s.ctx.stake_token
    if complete:
        done = staking.complete_unstake(s.require_signer(), to)
        print_result(chain, s.shown({**done.done.tx_out(), "returned": done.returned, "to": done.to}, token,
                                    ("returned",)),
                     f"returned {s.fmt(done.returned, token)} of stake to {done.to} (tx {done.done.tx_hash})")
        return
    if amount is None:
        raise click.UsageError("give AMOUNT to unstake, or --complete")
    if to is not None:
        raise click.UsageError("--to goes with --complete (where the unbonded stake is paid)")
    units = s.parse(amount, "AMOUNT", token)
    req = staking.request_unstake(s.require_signer(), units)
    print_result(chain, s.shown({**req.done.tx_out(), "unbonding": req.unbonding, "release_at": req.release_at},
                                token, ("unbonding",), ("release_at",)),
                 f"unbonding {s.fmt(units, token)}; withdraw from {when(req.release_at)} with "
                 f"`gpurent provider unstake --complete` (tx {req.done.tx_hash})")


@provider.group(cls=GuardedGroup)
def offer() -> None:
    """Create, update or withdraw an offer."""


def _terms(s: Session, base: dict[str, Any] | None, opts: dict[str, Any]) -> tuple:
    """OfferTerms as a tuple, from options (missing ones keep ``base``'s values)."""
    from oracle.metering import StaticGridIntensity

    def pick(name: str, default: Any = None) -> Any:
        value = opts.get(name)
        return value if value is not None else (base or {}).get(name, default)

    region = pick("region", "WORLD")
    grid = opts.get("grid_intensity_g_per_kwh")
    if grid is None:
        if base is not None and opts.get("region") is None:
            grid = base["grid_intensity_g_per_kwh"]
        else:
            try:
                grid = StaticGridIntensity().g_per_kwh(region or None)
            except Exception as exc:
                raise click.UsageError(f"{exc}; or pass --grid-intensity") from None
    # prices in the offer's own payment token (an update keeps the token: the contract refuses a change)
    token = (base or {}).get("payment_token") or opts.get("payment_token") or s.deployment.payment_token
    price_h = opts.get("price_per_gpu_hour")
    price_h = (s.parse(price_h, "--price-per-gpu-hour", token, max_units=UINT72_MAX) if price_h is not None
               else (base or {}).get("price_per_gpu_hour"))
    price_kwh = opts.get("price_per_kwh")
    price_kwh = (s.parse(price_kwh, "--price-per-kwh", token, max_units=UINT72_MAX) if price_kwh is not None
                 else (base or {}).get("price_per_kwh", 0))
    if price_h is None:
        raise click.UsageError("--price-per-gpu-hour is required")
    if price_h == 0:
        raise click.UsageError(f"--price-per-gpu-hour {opts.get('price_per_gpu_hour')} is below the token's "
                               f"smallest unit; give a price above 0")
    model = pick("gpu_model")
    if model is None:
        raise click.UsageError('--gpu-model is required: the GPU as NVML names it, e.g. "NVIDIA H100 80GB HBM3" '
                               "(`gpurent market models` lists the market's models)")
    check_gpu_model(s, model)
    agent = pick("agent")
    if agent is None:
        raise click.UsageError("--agent ADDRESS is required: the address whose key signs your GPUs' telemetry")
    return (
        gpu_model_arg(s, model),
        int(pick("gpu_count", 1)),
        token,
        int(price_h),
        int(price_kwh),
        text_bytes32(region, "--region"),
        int(grid),
        int(pick("max_duration_seconds", 86_400)),
        int(pick("min_uptime_bps", 9_500)),
        int(pick("max_gap_seconds", 0)),
        agent,
    )


def check_gpu_model(s: Session, model: str) -> None:
    """Refuse (exit 2) a GPU model the market's table does not have: its memory and power limit
    come from that table, never from another model."""
    row = reads.gpu_model(s.ctx, model)
    if int(row["powerLimitW"]) == 0:
        from oracle.cli.market_cmd import onchain_models

        known = ", ".join(repr(m["model"]) for m in onchain_models(s)) or "none yet"
        raise click.UsageError(f"GPU model {model!r} is not in the market's GPU model table (registered: {known}); "
                               "governance adds one with `gpurent governance set-gpu-model`")


def offer_options(fn):
    for option in reversed([
        click.option("--gpu-model", type=NAME32, default=None,
                     help='as NVML names it, e.g. "NVIDIA H100 80GB HBM3" (`gpurent market models` lists them)'),
        click.option("--gpu-count", type=uint(16, 1), default=None, help="GPUs offered (default 1)"),
        click.option("--price-per-gpu-hour", type=AMOUNT, default=None, help="token units per attested GPU-hour"),
        click.option("--price-per-kwh", type=AMOUNT_OR_ZERO, default=None,
                     help="token units per attested kWh (default 0)"),
        click.option("--region", type=NAME32, default=None, help="grid region: ISO country code (SE, DE, US, ...) or WORLD; sets the grid intensity"),
        click.option("--grid-intensity", "grid_intensity_g_per_kwh", type=click.IntRange(0, 10_000), default=None,
                     help="gCO2e/kWh (default: the static table's value for --region)"),
        click.option("--max-duration", "max_duration_seconds", type=ID, default=None,
                     help="longest rental in seconds (default 86400)"),
        click.option("--min-uptime-bps", type=click.IntRange(0, 10_000), default=None,
                     help="SLA: promised uptime per slash window, basis points (default 9500)"),
        click.option("--max-gap", "max_gap_seconds", type=click.IntRange(0, 2**32 - 1), default=None,
                     help="SLA: longest gap in service you promise, seconds (default 0: no gap promise; "
                          "shorter gaps are only unpaid time)"),
        click.option("--agent", type=ADDRESS, default=None, help="telemetry agent address (`gpurent oracle keys new`)"),
    ]):
        fn = option(fn)
    return fn


# The GPU model's memory and power limit come from the chain's model table, not from the offer.
_OFFER_KEYS = ("gpu_model", "gpu_count", "price_per_gpu_hour", "price_per_kwh", "region",
               "grid_intensity_g_per_kwh", "max_duration_seconds", "min_uptime_bps", "max_gap_seconds", "agent")


@offer.command("create")
@offer_options
@click.option("--payment-token", type=ADDRESS, default=None,
              help="an allowed payment token to price the offer in (default: the deployment's)")
@chain_options
@wallet_options
def offer_create(chain: ChainOptions, wallet: WalletSpec, payment_token: str | None, **opts: Any) -> None:
    """List an offer (needs enough stake for its GPUs)."""
    s = signing_session(chain, wallet)
    terms = _terms(s, None, {**{k: opts[k] for k in _OFFER_KEYS}, "payment_token": payment_token})
    created = offer_actions.create_offer(s.require_signer(), terms)
    view = created.offer.as_dict()
    line = (f"offer {view['offer_id']} listed: {view['gpu_count']} x {view['gpu_model']} at "
            f"{s.fmt(view['price_per_gpu_hour'], created.offer.token)}/GPU-hour, region {view['region']} "
            f"({view['grid_intensity_g_per_kwh']} gCO2e/kWh) (tx {created.done.tx_hash})")
    if created.done.resumed:
        line += " [sent by an earlier, interrupted run: not sent again]"
    print_result(chain, {**created.done.tx_out(), "offer": view}, line)


@offer.command("update")
@click.argument("offer_id", type=ID)
@offer_options
@chain_options
@wallet_options
def offer_update(offer_id: int, chain: ChainOptions, wallet: WalletSpec, **opts: Any) -> None:
    """Change an offer's terms (options left out keep their value; running rentals keep theirs)."""
    s = signing_session(chain, wallet)
    current = views.offer(s.ctx, offer_id).as_dict()
    terms = _terms(s, current, {k: opts[k] for k in _OFFER_KEYS})
    updated = offer_actions.update_offer(s.require_signer(), offer_id, terms)
    print_result(chain, {**updated.done.tx_out(), "offer": updated.offer.as_dict()},
                 f"offer {offer_id} updated to version {updated.offer.version} (tx {updated.done.tx_hash})")


@offer.command("withdraw")
@click.argument("offer_id", type=ID)
@chain_options
@wallet_options
def offer_withdraw(offer_id: int, chain: ChainOptions, wallet: WalletSpec) -> None:
    """Withdraw an offer: no new rentals; running ones continue."""
    s = signing_session(chain, wallet)
    done = offer_actions.withdraw_offer(s.require_signer(), offer_id)
    print_result(chain, {**done.tx_out(), "offer_id": offer_id}, f"offer {offer_id} withdrawn (tx {done.tx_hash})")


@provider.command("start")
@click.argument("rental_id", type=ID)
@chain_options
@wallet_options
def start_rental(rental_id: int, chain: ChainOptions, wallet: WalletSpec) -> None:
    """Start an opened rental (before its start deadline); then run `gpurent agent run`."""
    s = signing_session(chain, wallet)
    started = rentals.start_rental(s.require_signer(), rental_id)
    print_result(chain, {**started.done.tx_out(), "rental_id": rental_id, "started_at": started.started_at},
                 f"rental {rental_id} started {when(started.started_at)} (tx {started.done.tx_hash})")


@provider.command("finalize")
@click.argument("rental_id", type=ID)
@chain_options
@wallet_options
def finalize(rental_id: int, chain: ChainOptions, wallet: WalletSpec) -> None:
    """Finalize an ended rental: refund the renter's unused budget, update your reputation."""
    finalize_rental(chain, wallet, rental_id)


@provider.command("withdraw")
@click.option("--token", type=ADDRESS, default=None, help="token to withdraw (default: the payment token)")
@to_option
@chain_options
@wallet_options
def withdraw(token: str | None, to: str | None, chain: ChainOptions, wallet: WalletSpec) -> None:
    """Withdraw your earnings (and slash shares, refunds) to your wallet (or --to another address)."""
    withdraw_balance(chain, wallet, token, to)


@provider.command("status")
@click.argument("address", type=ADDRESS, required=False)
@watch_option
@chain_options
@wallet_options
def status(address: str | None, watch_s: float | None, chain: ChainOptions, wallet: WalletSpec) -> None:
    """Stake, offers, earnings and reputation of ADDRESS (default: your account)."""
    s = Session(chain, wallet if wallet.given else None)
    address = s.address_or_own(address, "status")
    watching(watch_s, lambda: _show_status(s, address, chain.as_json))


@provider.command("rentals")
@click.argument("address", type=ADDRESS, required=False)
@click.option("--pending", is_flag=True, help="only rentals waiting for you to start them (with their deadline)")
@click.option("--all", "include_done", is_flag=True, help="also finalized and cancelled rentals")
@watch_option
@chain_options
@wallet_options
def rentals_(address: str | None, pending: bool, include_done: bool, watch_s: float | None, chain: ChainOptions,
             wallet: WalletSpec) -> None:
    """Rentals of your offers: pending ones with the deadline to start them, running and ended ones."""
    from oracle.cli.rent_cmd import show_rentals

    s = Session(chain, wallet if wallet.given else None)
    address = s.address_or_own(address, "rentals")
    watching(watch_s, lambda: show_rentals(s, address, "provider", include_done, chain.as_json,
                                           only_status="Open" if pending else None))


def _show_status(s: Session, address: str, as_json: bool) -> None:
    import time

    from oracle.units import format_time

    stake_ = views.stake(s.ctx, address)
    offers = [o.as_dict() for o in views.offers(s.ctx, provider=address)]
    payment = s.deployment.payment_token
    out = {
        "provider": address,
        "stake": stake_.as_dict(),
        "withdrawable": reads.withdrawable(s.ctx, address, payment),
        "unclaimed": sum(reads.claimable(s.ctx, i) for i in views.unclaimed_rentals(s.ctx, address)),
        "wallet_balance": balance_of(s.w3, payment, address),
        "reputation": views.reputation(s.ctx, address).as_dict(),
        "offers": offers,
    }
    if as_json:
        print_json({**s.shown(out, payment, ("withdrawable", "unclaimed", "wallet_balance")),
                    "stake": s.shown(out["stake"], stake_.meta, ("active", "unbonding", "locked"),
                                     ("unbonding_release_at",))})
        return
    rep = out["reputation"]
    con = console()
    st = stake_.meta
    release = out["stake"]["unbonding_release_at"]
    con.print(kv_table(f"provider {address}", [
        ("active stake", s.fmt(out["stake"]["active"], st)),
        ("locked for running rentals", s.fmt(out["stake"]["locked"], st)),
        ("unbonding", f"{s.fmt(out['stake']['unbonding'], st)}"
                      + (f" (withdrawable from {format_time(release, int(time.time()))})" if release else "")),
        ("listed GPUs", out["stake"]["listed_gpus"]),
        ("withdrawable earnings", s.fmt(out["withdrawable"])),
        ("unclaimed earnings (withdraw claims them)", s.fmt(out["unclaimed"])),
        ("wallet balance", s.fmt(out["wallet_balance"])),
        ("reputation score", f"{rep['score_bps'] / 100:.2f} / 100"),
        ("completed / abandoned / slashes",
         f"{rep['completed_rentals']} / {rep['abandoned_rentals']} / {rep['slash_count']}"),
        *([("proof-of-GPU challenges", f"{rep['challenges_passed']} passed, {rep['challenges_failed']} failed")]
          if "challenges_passed" in rep else []),
    ]))
    if offers:
        con.print(table("offers", ["id", "active", "GPU", "count", "price/GPU-h", "region", "gCO2e/kWh"], [
            (o["offer_id"], o["active"], o["gpu_model"], o["gpu_count"], s.fmt(o["price_per_gpu_hour"], o["payment_token"]),
             o["region"], o["grid_intensity_g_per_kwh"]) for o in offers]))


@provider.command("rental")
@click.argument("rental_id", type=ID)
@chain_options
def rental(rental_id: int, chain: ChainOptions) -> None:
    """A rental as the chain stores it (same as `gpurent rent status`)."""
    s = Session(chain)
    print_json(rental_view(s, rental_id))


@provider.command("settle")
@click.argument("rental_id", type=ID)
@click.option("--node", "nodes", multiple=True, required=True, type=URL,
              help="oracle node URL (repeat; at least the threshold must answer)")
@chain_options
@wallet_options
def settle(rental_id: int, nodes: tuple[str, ...], chain: ChainOptions, wallet: WalletSpec) -> None:
    """Get paid now: collect a quorum of node signatures on RENTAL_ID's usage and submit it
    (the nodes' aggregator does the same on its own; the contract pays whoever submits)."""
    from oracle.node.aggregator import Aggregator

    s = signing_session(chain, wallet)
    aggregator = Aggregator(s.client, nodes, timeout_s=10.0)
    try:
        outcome = aggregator.settle_rental(rental_id)
    finally:
        aggregator.close()
    out = {"rental_id": rental_id, "status": outcome.status, "settled": outcome.status == "settled",
           "sequence": outcome.sequence, "payment": outcome.payment, "tx": outcome.tx_hash,
           "gas_used": outcome.gas_used, "signers": list(outcome.signers), "detail": outcome.detail,
           "nodes": outcome.notes}
    if outcome.status == "settled":
        out["report"] = settled_report(s, rental_id, outcome.tx_hash)
        print_result(chain, out, f"settled rental {rental_id} up to sequence {outcome.sequence}: "
                                 f"{s.fmt(outcome.payment)} moved from escrow (tx {outcome.tx_hash})")
    elif outcome.status in ("nothing_new", "already_settled"):
        print_result(chain, out, f"nothing new to settle for rental {rental_id}: {outcome.detail}")
    else:
        raise OperationFailed(f"rental {rental_id} not settled ({outcome.status}): {outcome.detail}")


def settled_report(s: Session, rental_id: int, tx_hash: str) -> dict[str, Any] | None:
    """The usage report a settle transaction carried (from its calldata)."""
    from oracle.actions.usage import report_from_tx

    return report_from_tx(s.ctx, tx_hash, rental_id)


from oracle.cli.provider_serve_cmd import serve  # noqa: E402  (the daemon lives in oracle.provider)

provider.add_command(serve)
