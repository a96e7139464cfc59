"""``gpurent rent``: open a rental, top it up, end it, see what it costs and emits."""

from __future__ import annotations

from typing import Any

import click

from oracle.cli.common import (
    ChainOptions,
    GuardedGroup,
    Session,
    WalletSpec,
    chain_options,
    console,
    finalize_rental,
    kv_table,
    offer_view,
    print_json,
    print_result,
    rental_view,
    signing_session,
    wallet_options,
    withdraw_balance,
)
from oracle.cli.params import AMOUNT, ID, UINT96_MAX, uint
from oracle.cli.rent_access_cmd import ACCESS_COMMANDS, WorkloadRequest, send_workload, workload_options


@click.group(cls=GuardedGroup)
def rent() -> None:
    """For renters: open, top up and end rentals; spent, remaining, energy and carbon."""


def settled_usage(s: Session, rental_id: int) -> dict[str, Any] | None:
    """The last usage report settled on chain for ``rental_id`` (read back from its calldata).

    Energy and carbon are not kept in contract storage, only in the signed reports that paid;
    ``UsageSettled`` (``settle``) or ``UsageBatchSettled`` (``settleBatch``) points at the
    transaction, whose input holds the report.
    """
    from oracle.chain.settlements import get_settlements

    logs = get_settlements(s.market.contract, s.deployment.block_number, rental_id=rental_id)
    if not logs:
        return None
    last = logs[-1]  # chain order
    report = report_from_tx(s, last.tx_hash, rental_id, last.sequence)
    if report is None:
        return None
    return {**report, "settled_in_tx": last.tx_hash, "settled_in_block": int(last.block_number)}


def report_from_tx(s: Session, tx_hash: Any, rental_id: int, sequence: int | None = None) -> dict[str, Any] | None:
    """The usage report of ``rental_id`` in a ``settle``/``settleBatch`` transaction's input."""
    tx = s.w3.eth.get_transaction(tx_hash)
    _, args = s.market.contract.decode_function_input(tx["input"])
    for report in args.get("reports") or [args.get("report")]:
        fields = _report_fields(report)
        if fields["rentalId"] == rental_id and (sequence is None or fields["sequence"] == sequence):
            return {
                "sequence": fields["sequence"],
                "period_end": fields["periodEnd"],
                "available_gpu_seconds": fields["availableGpuSeconds"],
                "busy_gpu_seconds": fields["busyGpuSeconds"],
                "energy_millijoules": fields["energyMillijoules"],
                "carbon_milligrams": fields["carbonMilligrams"],
                "uptime_bps": fields["uptimeBps"],
                "fault_flags": fields["faultFlags"],
            }
    return None


_REPORT_FIELDS = ("rentalId", "sequence", "periodEnd", "availableGpuSeconds", "busyGpuSeconds",
                  "energyMillijoules", "carbonMilligrams", "uptimeBps", "faultFlags", "telemetryHash",
                  "signerSetVersion")


def _report_fields(report: Any) -> dict[str, Any]:
    if isinstance(report, dict):
        return dict(report)
    return dict(zip(_REPORT_FIELDS, report))


def rental_status(s: Session, rental_id: int) -> dict[str, Any]:
    """Everything `gpurent rent status` shows, from the chain only."""
    view = rental_view(s, rental_id)
    usage = settled_usage(s, rental_id)
    view["settled_usage"] = usage
    if usage is not None:
        view["energy_kwh"] = usage["energy_millijoules"] / 3.6e9
        view["carbon_g"] = usage["carbon_milligrams"] / 1000
    return view


@rent.command("open")
@click.argument("offer_id", type=ID)
@click.option("--budget", type=AMOUNT, required=True, help="budget to escrow, in token units (e.g. 50)")
@click.option("--gpus", type=uint(16, 1), default=1, show_default=True)
@click.option("--no-approve", is_flag=True, help="fail instead of approving the market to pull the budget")
@workload_options
@chain_options
@wallet_options
def open_rental(offer_id: int, budget: str, gpus: int, no_approve: bool, workload: WorkloadRequest,
                chain: ChainOptions, wallet: WalletSpec) -> None:
    """Open a rental of OFFER_ID, escrowing --budget; the provider then starts it. With --image the
    workload's hash is committed on chain and the sealed spec goes to the provider daemon."""
    from oracle.provider.onchain import open_rental as open_rental_tx

    spec = workload.spec()
    if spec is not None and not workload.provider_url:
        raise click.UsageError("a workload needs --provider-url (or $GPURENT_PROVIDER_URL): the provider daemon's URL")
    s = signing_session(chain, wallet)
    offer = offer_view(s, offer_id)
    units = s.parse(budget, "--budget", max_units=UINT96_MAX)
    approve_tx = s.ensure_allowance(s.token, units, approve=not no_approve)
    result = open_rental_tx(s.market, offer_id, offer["version"], gpus, units,
                            spec.workload_hash() if spec is not None else None)
    ev = result.events["RentalOpened"][0]
    rental_id = int(ev["rentalId"])
    out = {**s.tx_out(result), "approve_tx": approve_tx, "rental_id": rental_id, "offer_id": offer_id,
           "budget": units, "start_deadline": int(ev["startDeadline"]), "provider": ev["provider"]}
    line = (f"rental {rental_id} opened on offer {offer_id} with a budget of {s.fmt(units)}; the provider must "
            f"start it before unix time {ev['startDeadline']} (tx {result.tx_hash})")
    if spec is not None:
        out["workload_hash"] = "0x" + spec.workload_hash().hex()
        out["workload"] = send_workload(s, rental_id, offer, spec, workload.provider_url)
        line += f"; workload {out['workload_hash'][:12]}… sent to {workload.provider_url}"
    print_result(chain, out, line)


@rent.command("top-up")
@click.argument("rental_id", type=ID)
@click.argument("amount", type=AMOUNT)
@click.option("--no-approve", is_flag=True)
@chain_options
@wallet_options
def top_up(rental_id: int, amount: str, no_approve: bool, chain: ChainOptions, wallet: WalletSpec) -> None:
    """Add AMOUNT to a rental's budget."""
    s = signing_session(chain, wallet)
    units = s.parse(amount, "AMOUNT", max_units=UINT96_MAX)
    approve_tx = s.ensure_allowance(s.token, units, approve=not no_approve)
    result = s.market.transact("topUp", rental_id, units)
    budget = int(result.events["RentalToppedUp"][0]["budget"])
    print_result(chain, {**s.tx_out(result), "approve_tx": approve_tx, "rental_id": rental_id, "budget": budget},
                 f"rental {rental_id} budget is now {s.fmt(budget)} (tx {result.tx_hash})")


@rent.command("end")
@click.argument("rental_id", type=ID)
@chain_options
@wallet_options
def end(rental_id: int, chain: ChainOptions, wallet: WalletSpec) -> None:
    """End an active rental (or cancel one not started yet). The final report can still settle
    during the settlement grace; the unused budget is refunded at finalization."""
    s = signing_session(chain, wallet)
    status = rental_view(s, rental_id)["status"]
    if status == "Open":
        result = s.market.transact("cancelRental", rental_id)
        refund = int(result.events["RentalCancelled"][0]["refund"])
        print_result(chain, {**s.tx_out(result), "rental_id": rental_id, "cancelled": True, "refund": refund},
                     f"rental {rental_id} cancelled before it started; {s.fmt(refund)} is withdrawable "
                     f"(`gpurent rent withdraw`) (tx {result.tx_hash})")
        return
    result = s.market.transact("endRental", rental_id)
    ended = int(result.events["RentalEnded"][0]["endedAt"])
    print_result(chain, {**s.tx_out(result), "rental_id": rental_id, "ended_at": ended},
                 f"rental {rental_id} ended at unix time {ended} (tx {result.tx_hash})")


@rent.command("finalize")
@click.argument("rental_id", type=ID)
@chain_options
@wallet_options
def finalize(rental_id: int, chain: ChainOptions, wallet: WalletSpec) -> None:
    """Finalize an ended rental after its settlement grace (the provider may do it at once)."""
    finalize_rental(chain, wallet, rental_id)


@rent.command("withdraw")
@chain_options
@wallet_options
def withdraw(chain: ChainOptions, wallet: WalletSpec) -> None:
    """Withdraw refunds (and slash compensation) to your wallet."""
    withdraw_balance(chain, wallet)


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
    pairs = [
        ("status", out["status"] + (f" ({out['end_reason']})" if out["end_reason"] != "None" else "")),
        ("offer / provider", f"{out['offer_id']} / {out['provider']}"),
        ("spent so far", s.fmt(out["paid"])),
        ("remaining budget", f"{s.fmt(out['remaining'])} of {s.fmt(out['budget'])}"),
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
