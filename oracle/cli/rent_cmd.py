"""``gpurent rent``: open a rental, top it up, end it, see what it costs and emits."""

from __future__ import annotations

import time
from typing import Any

import click

from oracle.actions import rentals, views
from oracle.protocol import RentalStatus
from oracle.units import format_time
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
    wallet_options,
)
from oracle.cli.params import AMOUNT, ID, UINT96_MAX, uint
from oracle.cli.rent_access_cmd import ACCESS_COMMANDS, WorkloadRequest, send_workload, workload_options


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
    line = (f"rental {rental_id} opened on offer {offer_id} with a budget of {s.fmt(units, offer.token)}; the provider "
            f"must start it before unix time {opened.start_deadline} (tx {opened.done.tx_hash})")
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
    print_result(chain, {**done.done.tx_out(), "approve_tx": done.approve_tx, "rental_id": rental_id,
                         "budget": done.budget},
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
        print_result(chain, {**cancelled.done.tx_out(), "rental_id": rental_id, "cancelled": True,
                             "refund": cancelled.refund},
                     f"rental {rental_id} cancelled before it started; {s.fmt(cancelled.refund, cancelled.token)} is "
                     f"withdrawable (`gpurent rent withdraw`) (tx {cancelled.done.tx_hash})")
        return
    ended = rentals.end_rental(s.require_signer(), rental_id)
    print_result(chain, {**ended.done.tx_out(), "rental_id": rental_id, "ended_at": ended.ended_at},
                 f"rental {rental_id} ended at unix time {ended.ended_at} (tx {ended.done.tx_hash})")


def finalize_rental(chain: ChainOptions, wallet: WalletSpec, rental_id: int) -> None:
    """`finalizeRental` for either side: the renter's refund, the fee and reputation settle."""
    s = signing_session(chain, wallet)
    f = rentals.finalize_rental(s.require_signer(), rental_id)
    print_result(chain, {**f.done.tx_out(), "rental_id": rental_id, "paid": f.paid, "fee": f.fee,
                         "refund": f.refund, "abandoned": f.abandoned},
                 f"rental {rental_id} finalized: paid {s.fmt(f.paid, f.token)} (fee {s.fmt(f.fee, f.token)}), "
                 f"refund {s.fmt(f.refund, f.token)} (tx {f.done.tx_hash})")


def withdraw_balance(chain: ChainOptions, wallet: WalletSpec, token: str | None = None, to: str | None = None) -> None:
    """`withdraw` of the caller's whole balance in TOKEN (default: the payment token), after
    `claim`ing the caller's accrued provider earnings; to the caller, or to ``to``."""
    s = signing_session(chain, wallet)
    w = rentals.withdraw(s.require_signer(), token, to=to)
    print_result(chain, {**w.done.tx_out(), "token": w.token.address, "amount": w.amount, "to": w.to,
                         "claimed_rentals": w.claimed_rentals, "claimed": w.claimed},
                 f"withdrew {s.fmt(w.amount, w.token)} to {w.to} (tx {w.done.tx_hash})")


def to_option(fn):
    return click.option("--to", type=ADDRESS, default=None,
                        help="pay to this address instead of your own (e.g. when the token blocks yours)")(fn)


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
@chain_options
def status(rental_id: int, chain: ChainOptions) -> None:
    """Spent so far, remaining budget, attested GPU time, energy and carbon of RENTAL_ID."""
    s = Session(chain)
    out = rental_status(s, rental_id)
    if chain.as_json:
        print_json(out)
        return
    usage = out["settled_usage"] or {}
    token = out["payment_token"]
    pairs = [
        ("status", out["status"] + (f" ({out['end_reason']})" if out["end_reason"] != "None" else "")),
        ("offer / provider", f"{out['offer_id']} / {out['provider']}"),
        ("spent so far", s.fmt(out["paid"], token)),
        ("remaining budget", f"{s.fmt(out['remaining'], token)} of {s.fmt(out['budget'], token)}"),
        *([("budget runs out", f"{format_time(out['runs_out_at'], int(time.time()))} at the GPU-hour price "
                                "(energy adds to the cost)")] if out["runs_out_at"] else []),
        ("attested GPU-hours", f"{out['available_gpu_seconds'] / 3600:.4f}"),
        ("uptime", f"{out['uptime_bps'] / 100:.2f} %"),
        ("settled reports", out["sequence"] and f"up to sequence {out['sequence']}" or "none yet"),
    ]
    if usage:
        pairs += [("busy GPU-hours", f"{usage['busy_gpu_seconds'] / 3600:.4f}"),
                  ("energy", f"{out['energy_kwh']:.4f} kWh"),
                  ("carbon", f"{out['carbon_g']:.1f} gCO2e")]
    console().print(kv_table(f"rental {rental_id}", pairs))


for _command in ACCESS_COMMANDS:
    rent.add_command(_command)
