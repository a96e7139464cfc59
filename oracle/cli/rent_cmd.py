"""``gpurent rent``: open a rental, top it up, end it, see what it costs and emits."""

from __future__ import annotations

import time
from typing import Any

import click

from oracle.actions import rentals, views
from oracle.cli.common import (
    ADDRESS,
    ChainOptions,
    GuardedGroup,
    Session,
    WalletSpec,
    chain_options,
    console,
    kv_table,
    print_json,
    print_result,
    signing_session,
    table,
    wallet_options,
)
from oracle.cli.display import RENTAL_COLUMNS, rental_json, rental_row, watch_option, watching, when
from oracle.cli.options import to_option
from oracle.cli.params import AMOUNT, ID, UINT96_MAX, uint
from oracle.cli.rent_access_cmd import ACCESS_COMMANDS, WorkloadRequest, send_workload, workload_options
from oracle.protocol import RentalStatus


@click.group(cls=GuardedGroup)
def rent() -> None:
    """For renters: open, top up and end rentals; spent, remaining, energy and carbon."""


def rental_status(s: Session, rental_id: int) -> dict[str, Any]:
    """Everything `gpurent rent status` shows, from the chain only."""
    from oracle.actions.usage import rental_status as status_of

    return status_of(s.ctx, rental_id)


@rent.command("open")
@click.argument("offer_id", type=ID)
@click.option("--budget", type=AMOUNT, required=True, help="budget to escrow, in the offer's payment token (e.g. 50)")
@click.option("--gpus", type=uint(16, 1), default=1, show_default=True)
@click.option("--no-approve", is_flag=True, help="fail instead of approving the market to pull the budget")
@workload_options
@chain_options
@wallet_options
def open_rental(offer_id: int, budget: str, gpus: int, no_approve: bool, workload: WorkloadRequest,
                chain: ChainOptions, wallet: WalletSpec) -> None:
    """Open a rental of OFFER_ID, escrowing --budget; the provider then starts it. With --image the
    workload's hash is committed on chain and the sealed spec goes to the provider daemon."""
    spec = workload.spec()
    if spec is not None and not workload.provider_url:
        raise click.UsageError("a workload needs --provider-url (or $GPURENT_PROVIDER_URL): the provider daemon's URL")
    s = signing_session(chain, wallet)
    offer = views.offer(s.ctx, offer_id)
    units = s.parse(budget, "--budget", offer.token, max_units=UINT96_MAX)
    opened = rentals.open_rental(s.require_signer(), offer_id, units, gpus=gpus,
                                 workload_hash=spec.workload_hash() if spec is not None else None,
                                 approve=not no_approve)
    rental_id = opened.rental_id
    out = {**opened.done.tx_out(), "approve_tx": opened.approve_tx, "rental_id": rental_id, "offer_id": offer_id,
           "budget": units, "start_deadline": opened.start_deadline, "provider": opened.provider,
           "payment_token": offer.token.address}
    out = s.shown(out, offer.token, ("budget",), ("start_deadline",))
    line = (f"rental {rental_id} opened on offer {offer_id} with a budget of {s.fmt(units, offer.token)}; the provider "
            f"must start it by {when(opened.start_deadline)} (tx {opened.done.tx_hash})")
    if opened.done.resumed:
        line += " [sent by an earlier, interrupted run: not sent again]"
    if spec is not None:
        out["workload_hash"] = "0x" + spec.workload_hash().hex()
        out["workload"] = send_workload(s, rental_id, offer.as_dict(), spec, workload.provider_url)
        line += f"; workload {out['workload_hash'][:12]}… sent to {workload.provider_url}"
    print_result(chain, out, line)


@rent.command("top-up")
@click.argument("rental_id", type=ID)
@click.argument("amount", type=AMOUNT)
@click.option("--no-approve", is_flag=True)
@chain_options
@wallet_options
def top_up(rental_id: int, amount: str, no_approve: bool, chain: ChainOptions, wallet: WalletSpec) -> None:
    """Add AMOUNT (in the rental's payment token) to a rental's budget."""
    s = signing_session(chain, wallet)
    token = views.rental(s.ctx, rental_id).token
    units = s.parse(amount, "AMOUNT", token, max_units=UINT96_MAX)
    done = rentals.top_up(s.require_signer(), rental_id, units, approve=not no_approve)
    print_result(chain, s.shown({**done.done.tx_out(), "approve_tx": done.approve_tx, "rental_id": rental_id,
                                 "budget": done.budget}, token, ("budget",)),
                 f"rental {rental_id} budget is now {s.fmt(done.budget, token)} (tx {done.done.tx_hash})")


@rent.command("end")
@click.argument("rental_id", type=ID)
@chain_options
@wallet_options
def end(rental_id: int, chain: ChainOptions, wallet: WalletSpec) -> None:
    """End an active rental (or cancel one not started yet). The final report can still settle
    during the settlement grace; the unused budget is refunded at finalization."""
    s = signing_session(chain, wallet)
    if views.rental(s.ctx, rental_id).status == RentalStatus.OPEN.contract_name:
        cancelled = rentals.cancel_rental(s.require_signer(), rental_id)
        print_result(chain, s.shown({**cancelled.done.tx_out(), "rental_id": rental_id, "cancelled": True,
                                     "refund": cancelled.refund}, cancelled.token, ("refund",)),
                     f"rental {rental_id} cancelled before it started; {s.fmt(cancelled.refund, cancelled.token)} is "
                     f"withdrawable (`gpurent rent withdraw`) (tx {cancelled.done.tx_hash})")
        return
    ended = rentals.end_rental(s.require_signer(), rental_id)
    print_result(chain, s.shown({**ended.done.tx_out(), "rental_id": rental_id, "ended_at": ended.ended_at}, None,
                                times=("ended_at",)),
                 f"rental {rental_id} ended {when(ended.ended_at)} (tx {ended.done.tx_hash})")


def finalize_rental(chain: ChainOptions, wallet: WalletSpec, rental_id: int) -> None:
    """`finalizeRental` for either side: the renter's refund, the fee and reputation settle."""
    s = signing_session(chain, wallet)
    f = rentals.finalize_rental(s.require_signer(), rental_id)
    print_result(chain, s.shown({**f.done.tx_out(), "rental_id": rental_id, "paid": f.paid, "fee": f.fee,
                                 "refund": f.refund, "abandoned": f.abandoned}, f.token, ("paid", "fee", "refund")),
                 f"rental {rental_id} finalized: paid {s.fmt(f.paid, f.token)} (fee {s.fmt(f.fee, f.token)}), "
                 f"refund {s.fmt(f.refund, f.token)} (tx {f.done.tx_hash})")


def withdraw_balance(chain: ChainOptions, wallet: WalletSpec, token: str | None = None, to: str | None = None) -> None:
    """`withdraw` of the caller's whole balance in TOKEN (default: the payment token), after
    `claim`ing the caller's accrued provider earnings; to the caller, or to ``to``."""
    s = signing_session(chain, wallet)
    w = rentals.withdraw(s.require_signer(), token, to=to)
    print_result(chain, s.shown({**w.done.tx_out(), "token": w.token.address, "amount": w.amount, "to": w.to,
                                 "claimed_rentals": w.claimed_rentals, "claimed": w.claimed}, w.token,
                                ("amount", "claimed")),
                 f"withdrew {s.fmt(w.amount, w.token)} to {w.to} (tx {w.done.tx_hash})")


@rent.command("finalize")
@click.argument("rental_id", type=ID)
@chain_options
@wallet_options
def finalize(rental_id: int, chain: ChainOptions, wallet: WalletSpec) -> None:
    """Finalize an ended rental after its settlement grace (the provider may do it at once)."""
    finalize_rental(chain, wallet, rental_id)


@rent.command("withdraw")
@click.option("--token", type=ADDRESS, default=None, help="token to withdraw (default: the payment token)")
@to_option
@chain_options
@wallet_options
def withdraw(token: str | None, to: str | None, chain: ChainOptions, wallet: WalletSpec) -> None:
    """Withdraw refunds (and slash compensation) to your wallet (or --to another address)."""
    withdraw_balance(chain, wallet, token, to)


@rent.command("status")
@click.argument("rental_id", type=ID)
@watch_option
@chain_options
def status(rental_id: int, watch_s: float | None, chain: ChainOptions) -> None:
    """Spent so far, remaining budget, attested GPU time, energy and carbon of RENTAL_ID."""
    s = Session(chain)
    watching(watch_s, lambda: _show_status(s, rental_id, chain.as_json))


def _show_status(s: Session, rental_id: int, as_json: bool) -> None:
    out = rental_json(rental_status(s, rental_id))
    if as_json:
        print_json(out)
        return
    usage = out["settled_usage"] or {}
    pairs = [
        ("status", out["status"] + (f" ({out['end_reason']})" if out["end_reason"] != "None" else "")),
        ("offer / provider", f"{out['offer_id']} / {out['provider']}"),
        ("GPUs", f"{out['gpu_count']} x {out['terms']['gpu_model']} at {out['price_per_gpu_hour_display']}"),
        ("spent so far", out["paid_display"]),
        ("remaining budget", f"{out['remaining_display']} of {out['budget_display']}"),
    ]
    if out["status"] == "Open":
        pairs.append(("provider must start it by", out["start_deadline_display"]))
    if out["started_at"]:
        pairs.append(("started", out["started_at_display"]))
    if out["runs_out_at"]:
        pairs.append(("budget runs out", f"{out['runs_out_at_display']} at the GPU-hour price (energy adds to the "
                                         "cost)"))
    if out["ended_at"]:
        pairs.append(("ended", out["ended_at_display"]))
    pairs += [
        ("attested GPU time", out["available_gpu_seconds_display"]),
        ("uptime", out["uptime_bps_display"]),
        ("settled reports", out["sequence"] and f"up to sequence {out['sequence']}" or "none yet"),
    ]
    if usage:
        pairs += [("busy GPU time", usage["busy_gpu_seconds_display"]),
                  ("energy", usage["energy_millijoules_display"]),
                  ("carbon", usage["carbon_milligrams_display"])]
    console().print(kv_table(f"rental {rental_id}", pairs))


@rent.command("list")
@click.option("--renter", type=ADDRESS, default=None, help="whose rentals (default: your wallet's)")
@click.option("--all", "include_done", is_flag=True, help="also finalized and cancelled rentals")
@watch_option
@chain_options
@wallet_options
def list_rentals(renter: str | None, include_done: bool, watch_s: float | None, chain: ChainOptions,
                 wallet: WalletSpec) -> None:
    """Your rentals: status, budget left, paid, and when each starts, runs out or ended."""
    s = Session(chain, wallet if wallet.given else None)
    renter = s.address_or_own(renter, "rentals", "--renter ADDRESS")
    watching(watch_s, lambda: show_rentals(s, renter, "renter", include_done, chain.as_json))


def show_rentals(s: Session, account: str, role: str, include_done: bool, as_json: bool,
                 only_status: str | None = None) -> None:
    """`rent list` and `provider rentals`: a table (or JSON) of ``account``'s rentals as ``role``."""
    now = int(time.time())
    found = [views.rental(s.ctx, i).as_dict() for i in views.rentals_of(s.ctx, account, role=role)]
    shown = [r for r in found if (include_done or r["status"] not in ("Finalized", "Cancelled"))
             and (only_status is None or r["status"] == only_status)]
    if as_json:
        print_json({role: account, "chain_id": s.chain_id, "rentals": [rental_json(r, now) for r in shown]})
        return
    if not shown:
        click.echo(f"no {'' if only_status is None else only_status.lower() + ' '}rentals for {account}"
                   + ("" if include_done or only_status else " (--all shows finalized and cancelled ones)"))
        return
    console().print(table(f"rentals of {role} {account}", RENTAL_COLUMNS, [rental_row(r, now) for r in shown]))


for _command in ACCESS_COMMANDS:
    rent.add_command(_command)
