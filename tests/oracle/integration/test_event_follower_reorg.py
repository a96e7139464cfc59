"""EventFollower on a real anvil: confirmations, a durable cursor, reorgs, RPC errors."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from web3 import HTTPProvider, Web3

from oracle.chain.anvil import ANVIL_KEYS
from oracle.chain.contract import BoundContract, make_sender
from oracle.chain.events import ChainEvent, CursorStore, EventFollower
from oracle.chain.tx import TxPolicy

from .fixture_contract import fixture_follower

pytestmark = pytest.mark.integration


def make_follower(fixture_contract, tmp_path, confirmations, seen, rewinds=None, **kw):
    return fixture_follower(fixture_contract, tmp_path, seen, confirmations=confirmations, rewinds=rewinds, **kw)


def pings(events: list[ChainEvent]) -> list[int]:
    return [e.args["n"] for e in events if e.name == "Pinged"]


def test_poll_delivers_only_confirmed_blocks_in_order(fresh_chain, fixture_contract, tmp_path):
    contract, _ = fixture_contract
    seen: list[ChainEvent] = []
    follower = make_follower(fixture_contract, tmp_path, confirmations=2, seen=seen)
    for n in range(3):
        contract.transact("ping", n)  # one block each (automine)
    follower.poll_once()
    assert pings(seen) == [0]  # blocks of ping 1 and 2 have < 2 confirmations
    fresh_chain.mine(2)
    follower.poll_once()
    assert pings(seen) == [0, 1, 2]
    follower.poll_once()
    assert pings(seen) == [0, 1, 2]  # nothing twice


def test_cursor_survives_restart(fresh_chain, fixture_contract, tmp_path):
    contract, _ = fixture_contract
    seen: list[ChainEvent] = []
    make_follower(fixture_contract, tmp_path, confirmations=0, seen=seen).poll_once()
    contract.transact("ping", 1)
    first = make_follower(fixture_contract, tmp_path, confirmations=0, seen=seen)
    first.poll_once()
    first.store.close()
    contract.transact("ping", 2)
    second = make_follower(fixture_contract, tmp_path, confirmations=0, seen=seen)  # same SQLite file
    second.poll_once()
    assert pings(seen) == [1, 2]


def test_reorg_of_unconfirmed_blocks_never_reaches_handler(fresh_chain, fixture_contract, tmp_path):
    contract, _ = fixture_contract
    seen: list[ChainEvent] = []
    rewinds: list[int] = []
    follower = make_follower(fixture_contract, tmp_path, confirmations=3, seen=seen, rewinds=rewinds)
    contract.transact("ping", 1)
    fresh_chain.mine(3)
    follower.poll_once()
    assert pings(seen) == [1]
    snap = fresh_chain.snapshot()
    contract.transact("ping", 666)  # will be orphaned
    fresh_chain.mine(1)
    follower.poll_once()
    assert pings(seen) == [1]  # 2 confirmations only: not delivered
    fresh_chain.revert(snap)
    contract.transact("ping", 2)
    fresh_chain.mine(3)
    follower.poll_once()
    assert pings(seen) == [1, 2]
    assert rewinds == []


def test_reorg_of_delivered_blocks_rewinds_and_redelivers(fresh_chain, fixture_contract, tmp_path):
    contract, _ = fixture_contract
    seen: list[ChainEvent] = []
    rewinds: list[int] = []
    follower = make_follower(fixture_contract, tmp_path, confirmations=0, seen=seen, rewinds=rewinds)
    contract.transact("ping", 1)
    follower.poll_once()
    fork_base = contract.w3.eth.block_number
    snap = fresh_chain.snapshot()
    contract.transact("ping", 666)
    contract.transact("ping", 667)
    follower.poll_once()
    assert pings(seen) == [1, 666, 667]

    fresh_chain.revert(snap)  # the two blocks are gone; a longer fork replaces them
    contract.transact("ping", 2)
    fresh_chain.mine(1)
    contract.transact("ping", 3)
    delivered = follower.poll_once()
    assert rewinds == [fork_base + 1]
    assert follower.stats.rewinds == 1
    assert delivered == 2
    # the consumer drops what came from blocks >= the rewind point and keeps the rest
    kept = [e for e in seen if e.block_number < rewinds[0] or seen.index(e) >= 3]
    assert pings(kept) == [1, 2, 3]


def test_reorg_with_anvil_reorg_rpc(fresh_chain, fixture_contract, tmp_path):
    contract, _ = fixture_contract
    seen: list[ChainEvent] = []
    rewinds: list[int] = []
    follower = make_follower(fixture_contract, tmp_path, confirmations=0, seen=seen, rewinds=rewinds)
    for n in (1, 2, 3):
        contract.transact("ping", n)
    follower.poll_once()
    head = contract.w3.eth.block_number
    fresh_chain.rpc("anvil_reorg", [2, []])  # replace the last two blocks with empty ones
    follower.poll_once()
    assert rewinds == [head - 1]
    assert follower.next_block() == head + 1


class FlakyHTTPProvider(HTTPProvider):
    """An HTTP provider whose first ``fail`` requests fail as if the endpoint were down."""

    def __init__(self, url: str, fail: int):
        super().__init__(url, exception_retry_configuration=None)
        self.fail = fail

    def make_request(self, method, params):
        if self.fail > 0:
            self.fail -= 1
            raise requests.ConnectionError("simulated RPC outage")
        return super().make_request(method, params)


def test_follower_survives_rpc_errors(fresh_chain, fixture_contract, tmp_path):
    contract, art = fixture_contract
    contract.transact("ping", 7)
    seen: list[ChainEvent] = []
    flaky = Web3(FlakyHTTPProvider(fresh_chain.url, fail=5))
    follower = EventFollower(
        flaky, contract.address, art.abi, seen.append,
        store=CursorStore(tmp_path / "cursor.sqlite3"), confirmations=0,
        poll_interval_s=0.01, rpc_retries=1, sleep=lambda s: None,
    )
    stop = threading.Event()
    thread = threading.Thread(target=follower.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not pings(seen) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(5)
    assert pings(seen) == [7]
    assert follower.stats.errors >= 1  # polls failed, were logged, and the loop went on


def test_range_is_split_into_chunks(fresh_chain, fixture_contract, tmp_path):
    contract, _ = fixture_contract
    for n in range(5):
        contract.transact("ping", n)
    seen: list[ChainEvent] = []
    follower = make_follower(fixture_contract, tmp_path, confirmations=0, seen=seen, max_block_range=2)
    follower.poll_once()
    assert pings(seen) == [0, 1, 2, 3, 4]


def test_sender_rebroadcasts_a_transaction_reorganised_out(fresh_chain, fixture_contract):
    contract, art = fixture_contract
    sender = make_sender(fresh_chain.url, ANVIL_KEYS[1], TxPolicy(receipt_poll_s=0.02, confirmations=3))
    mine = BoundContract(sender, contract.address, art.abi)
    w3 = contract.w3
    nonce_before = w3.eth.get_transaction_count(sender.address)
    # Reorganise only once the sender has seen the receipt: before that, a dropped transaction
    # is one that vanished from the pool (a plain rebroadcast), not one reorganised out.
    receipt_seen = threading.Event()
    fetch_receipt = sender._receipt

    def spy_receipt(tx_hash):
        receipt = fetch_receipt(tx_hash)
        if receipt is not None:
            receipt_seen.set()
        return receipt

    sender._receipt = spy_receipt
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", mine.transact("ping", 42)), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    assert receipt_seen.wait(10), "the sender never saw its receipt"
    assert w3.eth.get_transaction_count(sender.address) == nonce_before + 1
    first_block = w3.eth.block_number  # the ping's block, no confirmations yet
    fresh_chain.rpc("anvil_reorg", [1, []])  # replace it with an empty block: the ping is gone
    while thread.is_alive() and time.monotonic() < deadline + 10:
        fresh_chain.mine(1)
        time.sleep(0.05)
    thread.join(1)
    result = box["result"]
    assert sender.stats["reorged"] == 1
    assert result.block_number != first_block or result.receipt["blockHash"] != w3.eth.get_block(first_block)["hash"]
    assert w3.eth.get_block(result.block_number)["hash"] == result.receipt["blockHash"]  # canonical
    assert w3.eth.get_transaction_count(sender.address) == nonce_before + 1  # included exactly once
    assert w3.eth.block_number >= result.block_number + 3
