"""Faults on chain in ``make demo`` (issue 8): what the nodes slashed for the rental, read back from
the market's ``Slashed`` and ``SlashPaidOut`` events, for the summary of ``gpurent demo --cheat``.

With ``--cheat`` the agent answers every proof-of-GPU challenge wrongly: the period goes unpaid
(the nodes take it out of their reports) and each node's settlement loop collects a quorum on the
CHALLENGE_FAILED fault report and sends ``slash``. The demo waits for that ``Slashed`` event
before it finalizes (a slash must land within the settlement grace), then shows the kind, the
amount taken from the provider's stake and, after finalization, the renter's share of it.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from oracle.metering.faults import FaultKind


def read_slashes(w3: Any, market: Any, rental_id: int, from_block: int) -> list[dict[str, Any]]:
    """Every ``Slashed`` event of the rental, in chain order, with the account that sent it."""
    logs = market.events.Slashed().get_logs(from_block=from_block, to_block="latest",
                                            argument_filters={"rentalId": rental_id})
    out = []
    for ev in sorted(logs, key=lambda e: (e.blockNumber, e.logIndex)):
        kind = int(ev.args["kind"])
        out.append({
            "fault_id": int(ev.args["faultId"]), "kind": kind,
            "kind_name": FaultKind(kind).name if kind in FaultKind._value2member_map_ else str(kind),
            "amount": int(ev.args["amount"]), "token": ev.args["token"], "tx": "0x" + bytes(ev.transactionHash).hex(),
            "sender": w3.eth.get_transaction(ev.transactionHash)["from"], "block": int(ev.blockNumber),
        })
    return out


def read_slash_payout(market: Any, rental_id: int, from_block: int) -> dict[str, int] | None:
    """The rental's ``SlashPaidOut`` (at finalization): the renter's and the treasury's shares."""
    logs = market.events.SlashPaidOut().get_logs(from_block=from_block, to_block="latest",
                                                 argument_filters={"rentalId": rental_id})
    if not logs:
        return None
    args = logs[-1].args
    return {"renter_share": int(args["renterShare"]), "treasury_share": int(args["treasuryShare"])}


def wait_for_slash(read: Callable[[], list[dict[str, Any]]], timeout_s: float = 60.0,
                   sleep: Callable[[float], None] = time.sleep) -> list[dict[str, Any]]:
    """``read()`` until it returns a slash or ``timeout_s`` passes (then what it last returned)."""
    deadline = time.monotonic() + timeout_s
    while True:
        slashes = read()
        if slashes or time.monotonic() > deadline:
            return slashes
        sleep(0.5)


def summary_rows(slashes: list[dict[str, Any]] | None, payout: dict[str, int] | None, scale: int,
                 symbol: str, nodes: dict[str, str]) -> list[tuple[str, str, str]]:
    """The summary table's rows about faults slashed on chain (none: one row saying so)."""
    if slashes is None:
        return []
    if not slashes:
        return [("faults slashed on chain", "none", "chain: Slashed")]
    rows = []
    for s in slashes:
        who = nodes.get(s["sender"], "a non-node account")
        rows.append((f"slashed: fault {s['fault_id']} ({s['kind_name']}, kind {s['kind']})",
                     f"{s['amount'] / scale:.6f} {symbol} of stake", f"chain: Slashed, sent by {who}"))
    if payout is not None:
        rows.append(("  of which to the renter", f"{payout['renter_share'] / scale:.6f} {symbol}",
                     "chain: SlashPaidOut"))
    return rows
