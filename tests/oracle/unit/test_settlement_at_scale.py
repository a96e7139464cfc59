"""Settlement at any scale (issue 9): a round splits report requests and settleBatch calls to what
peers and a block accept, waits out 429 answers (Retry-After), and rotates which rentals go
first so none starves. Real keys, real EIP-712 digests and signatures; the market and the peers
are scripted (fault injection: rate limits, the 256-reports request limit, the batch cap)."""

from __future__ import annotations

import time

from oracle.node.aggregator import Aggregator
from oracle.node.settlement_loop import DueRentals, SettlementLoop

from settlement_fakes import KEYS, FakeMarket, FakePeers

HOSTS = {"n1": KEYS[0], "n2": KEYS[1], "n3": KEYS[2]}


def aggregator(market: FakeMarket, peers: FakePeers, **kw) -> Aggregator:
    return Aggregator(market, [f"http://{h}" for h in HOSTS], http=peers.client(), **kw)


def test_a_round_with_10000_due_rentals_settles_them_all():
    rentals = list(range(1, 10_001))
    market = FakeMarket(rentals, max_batch=200)
    # every 97th request to n2 is answered 429 (Retry-After 0): the round waits, it loses nothing
    peers = FakePeers(HOSTS, rate_limit=lambda host, n: 0 if host == "n2" and n % 97 == 0 else None)
    agg = aggregator(market, peers)
    loop = SettlementLoop(agg, DueRentals(lambda: rentals), slash_faults=False)
    started = time.monotonic()
    outcomes = loop.run_once()
    elapsed = time.monotonic() - started
    assert len(outcomes) == 10_000
    assert {o.status for o in outcomes} == {"settled"}, {o.status for o in outcomes}
    assert all(market.sequence[r] == 3 for r in rentals)
    assert max(market.batch_sizes) <= 200 and sum(market.batch_sizes) == 10_000  # the block's cap
    assert max(peers.batch_request_sizes) <= 256  # what a peer accepts per request
    assert peers.refused["n2"] > 0 and agg.stats["rate_limited"] == peers.refused["n2"]
    print(f"\n10,000 rentals: {len(market.batch_sizes)} settleBatch txs, {sum(peers.requests.values())} "
          f"peer requests, {elapsed:.1f} s")


def test_settle_batch_never_exceeds_the_contract_cap_or_the_request_limit():
    rentals = list(range(1, 601))
    market = FakeMarket(rentals, max_batch=1_000)
    peers = FakePeers(HOSTS)
    outcomes = aggregator(market, peers, max_reports_per_tx=10_000).settle_batch(rentals)
    assert {o.status for o in outcomes} == {"settled"}
    assert max(peers.batch_request_sizes) <= 256  # clamped to the peers' request limit
    assert sum(market.batch_sizes) == 600


def test_a_429_is_waited_out_for_its_retry_after_then_the_report_is_collected():
    market = FakeMarket([7])
    refused_once = set()

    def limit(host, n):
        if host == "n1" and host not in refused_once:
            refused_once.add(host)
            return 1  # Retry-After: 1
        return None

    peers = FakePeers(HOSTS, rate_limit=limit)
    agg = Aggregator(market, ["http://n1", "http://n2"], http=peers.client())  # both needed (2 of 2 answering)
    outcome = agg.settle_rental(7)
    assert outcome.status == "settled", outcome.detail
    n1 = [t for host, _, t in peers.log if host == "n1"]
    assert n1[1] - n1[0] >= 0.95  # nothing sent to n1 before its Retry-After passed
    assert agg.stats["rate_limited"] == 1


def test_rotation_lets_no_rental_starve_when_a_round_cannot_take_them_all():
    rentals = list(range(1, 161))
    market = FakeMarket(rentals)
    peers = FakePeers(HOSTS)
    agg = aggregator(market, peers)
    due = DueRentals(lambda: rentals, max_per_round=50)
    loop = SettlementLoop(agg, due, slash_faults=False, on_outcome=due.record)
    for _ in range(4):  # 4 rounds of 50 cover 160 rentals: each is taken once before any twice
        loop.run_once()
    assert all(market.sequence[r] == 3 for r in rentals), [r for r in rentals if market.sequence[r] != 3]


def test_a_stopped_round_defers_what_it_did_not_reach():
    rentals = list(range(1, 21))
    market = FakeMarket(rentals)
    agg = aggregator(market, FakePeers(HOSTS))
    agg.stop.set()
    outcomes = agg.settle_batch(rentals)
    assert {o.status for o in outcomes} == {"deferred"}
    assert market.calls["settleBatch"] == 0


def test_settlements_go_through_the_operator_registry_and_fall_back_when_it_refuses_the_node():
    from oracle.chain.errors import TransactionRevertedError
    from oracle.node.submit import RegistrySubmitter

    rentals = list(range(1, 6))
    market = FakeMarket(rentals)

    class Operator:  # the registry: settleBatchFor settles on the market (and accrues a rebate)
        refuse = False
        calls = 0

        def settle_batch_for(self, reports, signatures):
            self.calls += 1
            if self.refuse:
                raise TransactionRevertedError("OperatorRegistry_NotBondedSigner", {})
            return market.settle_batch(reports, signatures)

        def settle_for(self, report, signatures):
            self.calls += 1
            return market.settle(report, signatures)

    operator = Operator()
    agg = aggregator(market, FakePeers(HOSTS))
    agg.submitter = RegistrySubmitter(market, operator)
    assert {o.status for o in agg.settle_batch(rentals[:3])} == {"settled"}
    assert operator.calls == 1 and market.calls["settleBatch"] == 1
    operator.refuse = True  # no longer a bonded member: the market directly, no settlement lost
    peers = FakePeers(HOSTS, holds=lambda r: 4)
    agg2 = aggregator(market, peers)
    agg2.submitter = agg.submitter
    assert {o.status for o in agg2.settle_batch(rentals)} == {"settled"}
    assert agg.submitter.use_registry is False and market.calls["settleBatch"] == 2
