"""What a settlement transaction settled, from GpuRentMarket's events.

``settle`` emits ``UsageSettled(rentalId indexed, sequence, payment)``. ``settleBatch`` emits ONE
``UsageBatchSettled(uint256[] settled)`` for every report of an Active rental it settles (its
fast pass), with one packed word per report in report order
(``rentalId << 128 | sequence << 96 | payment``), then one
``UsageSettled`` for each report it settles afterwards (an Ended rental's final report); see
interfaces/IUsageSettlement.sol. Read both: the helpers here turn them into one list of
:class:`Settlement` in log order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping


@dataclass(frozen=True)
class Settlement:
    """One settled usage report."""

    rental_id: int
    sequence: int
    payment: int
    tx_hash: str | None = None
    block_number: int | None = None
    log_index: int | None = None


_PAYMENT_BITS = 96
_SEQUENCE_BITS = 32


def pack_entry(rental_id: int, sequence: int, payment: int) -> int:
    """One ``UsageBatchSettled.settled`` word, as the contract packs it."""
    if not (0 <= payment < 1 << _PAYMENT_BITS and 0 <= sequence < 1 << _SEQUENCE_BITS
            and 0 <= rental_id < 1 << 128):
        raise ValueError(f"({rental_id}, {sequence}, {payment}) does not fit a packed entry")
    return rental_id << 128 | sequence << _PAYMENT_BITS | payment


def batch_triples(settled: Iterable[int]) -> list[tuple[int, int, int]]:
    """``UsageBatchSettled.settled`` (one packed word per report) as (rentalId, sequence, payment)."""
    out = []
    for word in settled:
        word = int(word)
        out.append((word >> 128, (word >> _PAYMENT_BITS) & ((1 << _SEQUENCE_BITS) - 1),
                    word & ((1 << _PAYMENT_BITS) - 1)))
    return out


def _hex(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.startswith("0x") else "0x" + value
    return "0x" + bytes(value).hex()


def from_logs(logs: Iterable[Any], rental_id: int | None = None) -> list[Settlement]:
    """Settlements from decoded ``UsageSettled``/``UsageBatchSettled`` logs (web3 event data, or
    anything with ``event`` and ``args``), in (block, log index) order, optionally of one rental.
    Other events are ignored."""
    out: list[tuple[tuple[int, int, int], Settlement]] = []
    for log in logs:
        name = log["event"]
        args = log["args"]
        where = {"tx_hash": _hex(log.get("transactionHash")), "block_number": log.get("blockNumber"),
                 "log_index": log.get("logIndex")}
        if name == "UsageSettled":
            triples = [(int(args["rentalId"]), int(args["sequence"]), int(args["payment"]))]
        elif name == "UsageBatchSettled":
            triples = batch_triples(args["settled"])
        else:
            continue
        for k, (rid, sequence, payment) in enumerate(triples):
            if rental_id is None or rid == rental_id:
                key = (int(where["block_number"] or 0), int(where["log_index"] or 0), k)
                out.append((key, Settlement(rid, sequence, payment, **where)))
    return [s for _, s in sorted(out, key=lambda item: item[0])]


def from_events(events: Mapping[str, list[Any]], rental_id: int | None = None) -> list[Settlement]:
    """Settlements of one transaction from its decoded event args by name (``TxResult.events``), in
    the contract's order: a batch's UsageBatchSettled comes before its UsageSettled events."""
    out = [Settlement(*t) for ev in events.get("UsageBatchSettled", []) for t in batch_triples(ev["settled"])]
    out += [Settlement(int(ev["rentalId"]), int(ev["sequence"]), int(ev["payment"]))
            for ev in events.get("UsageSettled", [])]
    return [s for s in out if rental_id is None or s.rental_id == rental_id]


def from_receipt(contract: Any, receipt: Any, rental_id: int | None = None) -> list[Settlement]:
    """Settlements of a mined transaction's receipt, decoded with ``contract`` (web3 contract)."""
    from web3.logs import DISCARD

    logs = [ev for name in ("UsageSettled", "UsageBatchSettled")
            for ev in contract.events[name]().process_receipt(receipt, errors=DISCARD)]
    return from_logs(logs, rental_id)


def get_settlements(contract: Any, from_block: int, to_block: int | str = "latest",
                    rental_id: int | None = None) -> list[Settlement]:
    """Every settlement logged by ``contract`` (web3 contract) in the block range, optionally of one
    rental, in chain order (``eth_getLogs`` of both events)."""
    single = contract.events.UsageSettled().get_logs(
        from_block=from_block, to_block=to_block,
        argument_filters={"rentalId": rental_id} if rental_id is not None else None)
    batched = contract.events.UsageBatchSettled().get_logs(from_block=from_block, to_block=to_block)
    return from_logs([*single, *batched], rental_id)
