"""oracle.chain.settlements: settle's UsageSettled and settleBatch's UsageBatchSettled read as one
list of settled reports, and the exported ABI's event matches the contract's literal topic."""

from __future__ import annotations

import pytest
from eth_utils import keccak
from hexbytes import HexBytes

from oracle.chain.artifacts import load_abi
from oracle.chain.settlements import Settlement, batch_triples, from_events, from_logs, pack_entry

P = pack_entry


def test_batch_triples_unpack_one_word_per_report():
    assert batch_triples([P(1, 2, 3), P(4, 5, 6)]) == [(1, 2, 3), (4, 5, 6)]
    assert batch_triples([P(2**128 - 1, 2**32 - 1, 2**96 - 1)]) == [(2**128 - 1, 2**32 - 1, 2**96 - 1)]
    assert batch_triples([]) == []
    with pytest.raises(ValueError):
        pack_entry(1, 2**32, 0)
    with pytest.raises(ValueError):
        pack_entry(1, 0, 2**96)


def test_from_events_batch_first_then_usage_settled():
    events = {"UsageSettled": [{"rentalId": 7, "sequence": 2, "payment": 0}],
              "UsageBatchSettled": [{"settled": [P(5, 1, 100), P(7, 1, 300)]}]}
    assert [(s.rental_id, s.sequence, s.payment) for s in from_events(events)] == [(5, 1, 100), (7, 1, 300), (7, 2, 0)]
    assert [s.sequence for s in from_events(events, rental_id=7)] == [1, 2]
    assert from_events({}) == []


def test_from_logs_orders_by_block_and_log_index_and_filters():
    tx_a, tx_b = HexBytes(b"\xaa" * 32), HexBytes(b"\xbb" * 32)
    logs = [
        {"event": "UsageSettled", "args": {"rentalId": 3, "sequence": 4, "payment": 9},
         "transactionHash": tx_b, "blockNumber": 11, "logIndex": 0},
        {"event": "UsageBatchSettled", "args": {"settled": [P(3, 3, 8), P(4, 1, 2)]},
         "transactionHash": tx_a, "blockNumber": 10, "logIndex": 5},
        {"event": "RentalEnded", "args": {"rentalId": 3}, "blockNumber": 9, "logIndex": 0},
    ]
    got = from_logs(logs, rental_id=3)
    assert got == [Settlement(3, 3, 8, "0x" + "aa" * 32, 10, 5), Settlement(3, 4, 9, "0x" + "bb" * 32, 11, 0)]
    assert [s.rental_id for s in from_logs(logs)] == [3, 4, 3]


def test_abi_has_both_settlement_events():
    events = {item["name"]: item for item in load_abi("GpuRentMarket") if item.get("type") == "event"}
    assert [i["type"] for i in events["UsageBatchSettled"]["inputs"]] == ["uint256[]"]
    assert [(i["type"], i["indexed"]) for i in events["UsageSettled"]["inputs"]] == [
        ("uint256", True), ("uint256", False), ("uint256", False)]
    # The literal topic in contracts/abstracts/UsageSettlement.sol.
    assert keccak(text="UsageBatchSettled(uint256[])").hex().removeprefix("0x") == (
        "14514352a412db2ff804e6de60497df9429cc4ce45e2d12d6c02441423006c2e")
