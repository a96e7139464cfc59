"""A lagging RPC backend (issue 9): a null answer for a block the node already saw is retried,
never taken as a reorg; a persistently lagging head makes the follower wait, not spin; a rental
the backend does not show yet is retried, not taken as empty terms. Fault injection: a provider
in front of a real anvil that answers null for blocks above a "backend head"."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from web3 import HTTPProvider, Web3

from oracle.chain.anvil import ANVIL_KEYS
from oracle.chain.contract import BoundContract
from oracle.chain.events import ChainEvent
from oracle.chain.tx import TxPolicy
from oracle.node.feed import RentalNotVisibleYet, RentalRegistryFeed

from .fixture_contract import fixture_follower, run_follower_for

pytestmark = pytest.mark.integration


class LaggingProvider(HTTPProvider):
    """``eth_blockNumber`` from the real head; blocks above ``backend_head`` answered null (a
    load balancer whose block backend lags its head backend). Counts every request."""

    def __init__(self, url: str):
        super().__init__(url, exception_retry_configuration=None)
        self.backend_head: int | None = None
        self.requests: Counter = Counter()

    def make_request(self, method, params):
        self.requests[method] += 1
        if method == "eth_getBlockByNumber" and self.backend_head is not None:
            number = params[0]
            if isinstance(number, str) and number.startswith("0x") and int(number, 16) > self.backend_head:
                return {"jsonrpc": "2.0", "id": 1, "result": None}
        return super().make_request(method, params)


def follower_on(provider, fixture, tmp_path, seen, rewinds):
    return fixture_follower(fixture, tmp_path, seen, web3=Web3(provider), confirmations=0, rewinds=rewinds,
                            max_lag_wait_s=2.0)


def test_a_persistently_lagging_head_makes_the_follower_wait_not_spin(fresh_chain, fixture_contract, tmp_path):
    bound, _ = fixture_contract
    bound.transact("ping", 1)
    lagging = LaggingProvider(fresh_chain.url)
    lagging.backend_head = bound.w3.eth.block_number - 1  # the newest block is never served
    seen, rewinds = [], []
    follower = follower_on(lagging, fixture_contract, tmp_path, seen, rewinds)
    run_follower_for(follower, 3.0)
    total = sum(lagging.requests.values())
    # waits double from 0.05 s up to 2 s: about 6 polls of 2 requests in 3 s (it spun at ~50/s before)
    assert total <= 20, lagging.requests
    assert follower.stats.lagging >= 3 and rewinds == []
    lagging.backend_head = None  # the backend catches up: the event is delivered
    run_follower_for(follower, 2.5)
    assert [e.args["n"] for e in seen if e.name == "Pinged"] == [1]


def test_a_null_block_for_a_checkpoint_is_lag_not_a_reorg(fresh_chain, fixture_contract, tmp_path):
    bound, _ = fixture_contract
    bound.transact("ping", 1)
    lagging = LaggingProvider(fresh_chain.url)
    seen, rewinds = [], []
    follower = follower_on(lagging, fixture_contract, tmp_path, seen, rewinds)
    follower.poll_once()
    assert [e.args["n"] for e in seen if e.name == "Pinged"] == [1]
    lagging.backend_head = 0  # now answers null even for the blocks the follower stored
    run_follower_for(follower, 1.0)
    assert rewinds == [] and follower.stats.rewinds == 0  # before: taken as a reorg, rewound, re-read
    assert follower.stats.lagging >= 1
    assert len([e for e in seen if e.name == "Pinged"]) == 1  # nothing re-delivered


def test_a_rental_the_rpc_does_not_show_yet_is_retried_not_taken_as_empty():
    class Client:
        market = None
        answers = 0

        def get_rental(self, rental_id):
            self.answers += 1
            if self.answers < 3:  # a lagging backend: the rental as if never opened
                return {"startedAt": 0, "offerId": 0, "gpuCount": 0}
            return {"startedAt": 1_000, "offerId": 4, "gpuCount": 2, "pricePerGpuHour": 7, "pricePerKwh": 0}

        def view(self, name, *args, block="latest"):
            assert name == "getOffer" and block == 123  # the offer as of the RentalStarted block
            return {"agent": "0x" + "11" * 20, "gpuModel": b"NVIDIA H100 80GB HBM3".ljust(32, b"\0"),
                    "region": b"eu".ljust(32, b"\0"), "gridIntensityGPerKwh": 40, "gpuCount": 2}

        def params(self):
            return {"silenceTimeout": 3600}

    class Registry:
        rentals = {}

        def upsert(self, rental):
            self.rentals[rental.rental_id] = rental

    registry, sleeps = Registry(), []
    feed = RentalRegistryFeed(Client(), [registry], sleep=sleeps.append)
    feed(ChainEvent("RentalStarted", {"rentalId": 9, "startedAt": 1_000}, 123, "0x", "0x", 0, "0x"))
    assert registry.rentals[9].start_ms == 1_000_000 and registry.rentals[9].gpu_count == 2
    assert len(sleeps) == 2  # two lagging answers waited out
    assert feed.terms[9].power_limit_w == 700 and feed.terms[9].silence_timeout_s == 3600

    never = RentalRegistryFeed(type("C", (Client,), {"answers": -10**6})(), [Registry()], sleep=lambda s: None,
                               retries=2)
    with pytest.raises(RentalNotVisibleYet):
        never(ChainEvent("RentalStarted", {"rentalId": 9, "startedAt": 1_000}, 123, "0x", "0x", 0, "0x"))


def test_a_null_receipt_from_a_lagging_backend_is_waited_out_not_taken_as_a_reorg(fresh_chain, fixture_contract):
    from eth_account import Account

    from oracle.chain.tx import TransactionSender

    bound, art = fixture_contract

    class ReceiptLag(LaggingProvider):
        """After the first real receipt, the next six receipt and block answers come from a
        backend that has not seen the block yet (null)."""

        seen_receipt = False
        lagging_answers = 6

        def make_request(self, method, params):
            if method in ("eth_getTransactionReceipt", "eth_getBlockByNumber") and self.seen_receipt \
                    and self.lagging_answers > 0:
                self.lagging_answers -= 1
                self.requests[method] += 1
                return {"jsonrpc": "2.0", "id": 1, "result": None}
            answer = super().make_request(method, params)
            if method == "eth_getTransactionReceipt" and answer.get("result"):
                self.seen_receipt = True
            return answer

    provider = ReceiptLag(fresh_chain.url)
    sender = TransactionSender(Web3(provider), Account.from_key(ANVIL_KEYS[1]),
                               policy=TxPolicy(receipt_poll_s=0.02, confirmations=2, rebroadcast_after_s=30))
    mine = BoundContract(sender, bound.address, art.abi)
    done = threading.Event()

    def mine_blocks():  # confirmations come from later blocks
        while not done.is_set():
            fresh_chain.mine(1)
            time.sleep(0.05)

    miner = threading.Thread(target=mine_blocks, daemon=True)
    miner.start()
    try:
        result = mine.transact("ping", 9)
    finally:
        done.set()
        miner.join(2)
    assert sender.stats["reorged"] == 0  # before: the null receipt was a "reorg" and the tx was rebroadcast
    assert sender.stats.get("rpc_lagging", 0) >= 1
    assert bound.w3.eth.get_block(result.block_number)["hash"] == result.receipt["blockHash"]


def test_terms_come_from_rental_terms_when_the_market_has_it_never_from_the_offer():
    from oracle.node.feed import read_rental_terms

    class Market:
        def has_function(self, name):
            return name == "rentalTerms"

    class Client:
        market = Market()

        def get_rental(self, rental_id):
            return {"startedAt": 1_000, "offerId": 4, "gpuCount": 8, "pricePerGpuHour": 2_000_000, "pricePerKwh": 5}

        def view(self, name, *args, block="latest"):
            assert name == "rentalTerms", "the offer must not be read when the rental's terms exist"
            return {"agent": "0x" + "22" * 20, "gpuModel": b"NVIDIA H200".ljust(32, b"\0"), "gpuCount": 8,
                    "powerLimitW": 650, "memoryMib": 143_771, "region": b"eu".ljust(32, b"\0"),
                    "gridIntensityGPerKwh": 30, "minUptimeBps": 9_900, "maxGapSeconds": 30,
                    "slashWindowSeconds": 3_600, "silenceTimeout": 7_200, "workloadHash": b"\x01" * 32}

    terms = read_rental_terms(Client(), 3)
    assert (terms.gpu_count, terms.power_limit_w, terms.gpu_model) == (8, 650, "NVIDIA H200")
    assert (terms.min_uptime_bps, terms.max_gap_seconds, terms.slash_window_seconds) == (9_900, 30, 3_600)
    assert terms.silence_timeout_s == 7_200 and terms.economics().gpu_count == 8
    entry = terms.registry_entry()
    assert entry.start_ms == 1_000_000 and entry.agent == "0x" + "22" * 20
    assert getattr(entry, "power_limit_w", 650) == 650
