"""What a rental used, read back from the chain: energy and carbon are not kept in contract
storage, only in the signed reports that paid, so they come from the settling transactions'
calldata (``UsageSettled`` / ``UsageBatchSettled`` point at them)."""

from __future__ import annotations

from typing import Any

from oracle.actions import views
from oracle.actions.context import MarketView
from oracle.chain.structs import USAGE_REPORT_ABI_NAMES


def settled_usage(view: MarketView, rental_id: int) -> dict[str, Any] | None:
    """The last usage report settled on chain for ``rental_id`` (read back from its calldata).

    Energy and carbon are not kept in contract storage, only in the signed reports that paid;
    ``UsageSettled`` (``settle``) or ``UsageBatchSettled`` (``settleBatch``) points at the
    transaction, whose input holds the report.
    """
    from oracle.chain.settlements import get_settlements

    logs = get_settlements(view.market.contract, view.require_deployment().block_number, rental_id=rental_id)
    if not logs:
        return None
    last = logs[-1]  # chain order
    report = report_from_tx(view, last.tx_hash, rental_id, last.sequence)
    if report is None:
        return None
    return {**report, "settled_in_tx": last.tx_hash, "settled_in_block": int(last.block_number)}


def report_from_tx(view: MarketView, tx_hash: Any, rental_id: int, sequence: int | None = None) -> dict[str, Any] | None:
    """The usage report of ``rental_id`` in a ``settle``/``settleBatch`` transaction's input."""
    tx = view.w3.eth.get_transaction(tx_hash)
    _, args = view.market.contract.decode_function_input(tx["input"])
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
                "challenges_passed": fields["challengesPassed"],
                "challenges_failed": fields["challengesFailed"],
            }
    return None




def _report_fields(report: Any) -> dict[str, Any]:
    if isinstance(report, dict):
        return dict(report)
    return dict(zip(USAGE_REPORT_ABI_NAMES, report, strict=True))


def rental_status(view: MarketView, rental_id: int) -> dict[str, Any]:
    """Everything `gpurent rent status` shows, from the chain only."""
    out = views.rental(view, rental_id).as_dict()
    usage = settled_usage(view, rental_id)
    out["settled_usage"] = usage
    if usage is not None:
        out["energy_kwh"] = usage["energy_millijoules"] / 3.6e9
        out["carbon_g"] = usage["carbon_milligrams"] / 1000
    return out
