"""The pure parts of oracle.actions: token metadata decoding in every common shape, intent keys,
the journal's attempts, the budget's run-out time, and TxRequests as a browser wallet takes them."""

from __future__ import annotations

from pathlib import Path

from eth_abi import encode

from oracle.actions.journal import DONE, FAILED, OPEN, Journal
from oracle.actions.requests import TxRequest, intent_key
from oracle.actions.tokens import decode_decimals, decode_symbol
from oracle.actions.views import runs_out_at


def test_symbol_decodes_from_string_bytes32_and_nothing():
    assert decode_symbol(encode(["string"], ["tUSD"])) == "tUSD"
    assert decode_symbol(b"MKR".ljust(32, b"\0")) == "MKR"  # MKR's symbol() returns bytes32
    assert decode_symbol(None) == "" and decode_symbol(b"") == ""
    assert decode_symbol(b"\x01\x02".ljust(32, b"\0")) == ""  # unprintable bytes are no symbol
    assert len(decode_symbol(encode(["string"], ["X" * 100]))) == 32


def test_decimals_absent_or_absurd_is_none():
    assert decode_decimals(encode(["uint8"], [6])) == 6
    assert decode_decimals(None) is None and decode_decimals(b"\x01") is None
    assert decode_decimals(encode(["uint256"], [2**200])) is None


def test_intent_key_is_stable_and_separates_arguments():
    a = intent_key("open_rental", "0xAbC", 3, 1, 5_000_000, b"\0" * 32)
    assert a == intent_key("open_rental", "0xabc", 3, 1, 5_000_000, b"\0" * 32)  # address case does not matter
    assert a != intent_key("open_rental", "0xabc", 3, 1, 5_000_001, b"\0" * 32)
    assert a.startswith("open_rental:")


def test_tx_request_as_wallet_json_has_hex_value_and_no_to_for_creation():
    call = TxRequest(to="0x" + "11" * 20, data="0xabcd", value=10, label="x", function="f")
    assert call.as_json() == {"to": "0x" + "11" * 20, "data": "0xabcd", "value": "0xa", "label": "x",
                              "function": "f", "step": "f"}
    assert "to" not in TxRequest(to=None, data="0x60", function="constructor").as_json()


def _record(journal: Journal, attempt, step: str, nonce: int, tx_hash: str) -> None:
    journal.record(attempt, step=step, final=step == "openRental", label=step, function=step, sender="0xA",
                   nonce=nonce, base={"to": "0xB", "data": "0x"}, fees={"maxFeePerGas": 1}, raw=b"\x01", tx_hash=tx_hash)


def test_journal_resumes_an_open_attempt_and_starts_a_new_one_after_done_or_failed(tmp_path: Path):
    journal = Journal(tmp_path / "j.sqlite", genesis="0x01")
    first = journal.begin("k", action="open_rental", account="0xA")
    _record(journal, first, "approve", 4, "0xaa")
    _record(journal, first, "openRental", 5, "0xbb")
    _record(journal, first, "openRental", 5, "0xcc")  # a fee-bumped replacement: same step, both hashes kept
    again = journal.begin("k", action="open_rental", account="0xA")  # interrupted: the same attempt
    assert again.attempt == first.attempt and again.state == OPEN
    txs = journal.txs(again)
    assert [t.step for t in txs] == ["approve", "openRental"] and txs[1].hashes == ["0xbb", "0xcc"]
    journal.finish(again, DONE)
    assert journal.begin("k", action="open_rental", account="0xA").attempt == first.attempt + 1
    journal.finish(journal.begin("k", action="open_rental", account="0xA"), FAILED)
    assert journal.begin("k", action="open_rental", account="0xA").attempt == first.attempt + 2


def test_journal_of_another_chain_with_the_same_id_is_set_aside(tmp_path: Path):
    path = tmp_path / "31337-0xmarket.sqlite"
    old = Journal(path, genesis="0xold")
    _record(old, old.begin("k", action="stake", account="0xA"), "stake", 0, "0x11")
    old.close()
    fresh = Journal(path, genesis="0xnew")  # a new local anvil reused chain id and market address
    assert fresh.attempts() == []
    assert any(p.name.startswith("31337-0xmarket.other-chain-") for p in tmp_path.iterdir())


def test_budget_runs_out_at_the_gpu_hour_price_capped_by_the_longest_duration():
    # 2 GPUs at 3 tokens/GPU-hour (6 decimals): 6_000_000 units an hour; 3_000_000 left = 30 min
    assert runs_out_at(status="Active", budget_left=3_000_000, gpu_count=2, price_per_gpu_hour=3_000_000,
                       started_at=1_000, last_settled_at=2_000, max_duration_seconds=86_400) == 2_000 + 1_800
    assert runs_out_at(status="Active", budget_left=10**12, gpu_count=1, price_per_gpu_hour=1,
                       started_at=1_000, last_settled_at=0, max_duration_seconds=3_600) == 4_600
    assert runs_out_at(status="Open", budget_left=5, gpu_count=1, price_per_gpu_hour=1, started_at=0,
                       last_settled_at=0, max_duration_seconds=10) == 0
