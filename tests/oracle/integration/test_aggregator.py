"""The aggregator's choices against a real market, with scripted peer nodes (httpx.MockTransport):
lying and outside signers are refused, disagreeing nodes give no quorum, batches and faults
are submitted once, and an ended rental settles its last report that ends by the end."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Callable

import httpx
import pytest
from eth_account import Account

from oracle.attestation.eip712 import (
    FaultReport,
    UsageReport,
    fault_report_digest,
    usage_batch_digest,
    usage_report_digest,
)
from oracle.attestation.reports import END_CHALLENGE_FAULT_ID
from oracle.attestation.signing import sign_digest
from oracle.node.aggregator import Aggregator
from oracle.node.attestor import report_fields

from .conftest import RENTER, SUBMITTER, open_active_rental

pytestmark = pytest.mark.integration

OUTSIDER_KEY = bytes.fromhex("99" * 32)


class FakeNode:
    """Answers the node API for reports built deterministically from (rental, sequence)."""

    def __init__(self, key: bytes, chain_id: int, market: str, *, holds: int, base_time: int,
                 tamper: bool = False, variant: int = 0, signer_key: bytes | None = None,
                 report_base: int | None = None, fault_observed_at: int | None = None):
        self.key, self.chain_id, self.market = key, chain_id, market
        self.fault_observed_at = base_time + 50 if fault_observed_at is None else fault_observed_at
        self.holds, self.base_time, self.tamper, self.variant = holds, base_time, tamper, variant
        # Report `sequence` ends 10 * sequence s after `report_base`, by default the rental's
        # start (set by aggregator_for): 10 GPU-seconds per 10 s, within the report bounds.
        self.report_base = report_base
        self.start_of: Callable[[int], int] | None = None
        self.signer_key = signer_key or key
        self.address = Account.from_key(key).address

    def report(self, rental_id: int, sequence: int) -> UsageReport:
        base = self.report_base if self.report_base is not None else self.start_of(rental_id)
        return UsageReport(rental_id, sequence, base + 10 * sequence, 10 * sequence, 5 * sequence,
                           1_000_000 * sequence, 40 * sequence, 10_000, 0, sequence, 0,
                           bytes([self.variant]) * 32, 1)

    def signed(self, report, digest) -> dict:
        shown = replace(report, available_gpu_seconds=report.available_gpu_seconds + 1) if self.tamper else report
        return {"report": report_fields(shown), "digest": "0x" + digest.hex(),
                "signature": "0x" + sign_digest(self.signer_key, digest).hex(), "signer": self.address}

    def handle(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.strip("/").split("/")
        if request.method == "GET" and parts[-1] == "report":
            rental_id = int(parts[2])
            sequence = int(request.url.params.get("sequence", self.holds))
            if sequence > self.holds:
                return httpx.Response(409, json={"detail": "batches not held yet"})
            report = self.report(rental_id, sequence)
            digest = usage_report_digest(report, self.chain_id, self.market)
            return httpx.Response(200, json={"rental_id": rental_id, "sequence": sequence, **self.signed(report, digest)})
        if request.method == "GET" and parts[-1] == "faults":
            rental_id = int(parts[2])
            fault_id = int(request.url.params.get("from_id", 0))
            if fault_id not in (0, END_CHALLENGE_FAULT_ID):
                return httpx.Response(200, json={"rental_id": rental_id, "sequence": self.holds, "faults": []})
            kind = 5 if fault_id == END_CHALLENGE_FAULT_ID else 1  # the end challenge's fault: CHALLENGE_FAILED
            fault = FaultReport(rental_id, fault_id, kind, self.fault_observed_at, b"\x33" * 32, 1)
            digest = fault_report_digest(fault, self.chain_id, self.market)
            return httpx.Response(200, json={"rental_id": rental_id, "sequence": self.holds,
                                             "faults": [{"fault_id": fault_id, "signed": self.signed(fault, digest)}]})
        if request.method == "POST" and parts[-1] == "batch-signatures":
            refs = json.loads(request.content)["reports"]
            reports = [self.report(r["rental_id"], r["sequence"]) for r in refs]
            for ref, report in zip(refs, reports):
                if ref["digest"] != "0x" + usage_report_digest(report, self.chain_id, self.market).hex():
                    return httpx.Response(409, json={"detail": "digest differs"})
            digest = usage_batch_digest(reports, self.chain_id, self.market)
            return httpx.Response(200, json={"digest": "0x" + digest.hex(),
                                             "signature": "0x" + sign_digest(self.key, digest).hex(),
                                             "signer": self.address,
                                             "reports": [report_fields(r) for r in reports]})
        return httpx.Response(404, json={"detail": "no such route"})


def aggregator_for(deployed, nodes: dict[str, FakeNode]) -> Aggregator:
    def route(request: httpx.Request) -> httpx.Response:
        node = nodes.get(request.url.host)
        if node is None:
            raise httpx.ConnectError("connection refused", request=request)
        return node.handle(request)

    client = deployed.client(SUBMITTER)
    for node in nodes.values():
        node.start_of = lambda rental_id: int(client.get_rental(rental_id)["startedAt"])
    advance_chain(deployed)
    http = httpx.Client(transport=httpx.MockTransport(route))
    return Aggregator(client, [f"http://{name}" for name in ("n1", "n2", "n3")], http=http)


def advance_chain(deployed, seconds: int = 200) -> None:
    """Moves the chain's clock past every fake report's periodEnd (reports of an Active rental
    settle only once their periodEnd is not after the block time)."""
    deployed.chain.increase_time(seconds)
    deployed.chain.rpc("evm_mine", [])


@pytest.fixture
def now(deployed) -> int:
    return int(deployed.client(SUBMITTER).w3.eth.get_block("latest")["timestamp"]) - 3600


def test_liar_and_down_node_are_refused_quorum_of_two_settles(deployed, now):
    rental = open_active_rental(deployed)
    chain_id, market = deployed.client(SUBMITTER).chain_id, deployed.market
    k1, k2, k3 = deployed.node_keys
    agg = aggregator_for(deployed, {
        "n1": FakeNode(k1, chain_id, market, holds=6, base_time=now),
        "n2": FakeNode(k2, chain_id, market, holds=5, base_time=now),
        "n3": FakeNode(k3, chain_id, market, holds=6, base_time=now, tamper=True),
    })
    outcome = agg.settle_rental(rental.rental_id)
    assert outcome.status == "settled", outcome.detail
    assert outcome.sequence == 5  # the highest sequence two valid nodes hold
    assert set(outcome.signers) == {Account.from_key(k).address for k in (k1, k2)}
    assert outcome.notes["http://n3"].startswith("refused")
    assert outcome.payment == 50 * 3_600_000 // 3600  # 50 GPU-seconds at 3.6 tUSD per GPU-hour
    again = agg.settle_rental(rental.rental_id)
    assert again.status == "nothing_new"


def test_outsider_signer_and_disagreement_give_no_quorum(deployed, now):
    rental = open_active_rental(deployed)
    client = deployed.client(SUBMITTER)
    k1, k2, _ = deployed.node_keys
    nonce = client.w3.eth.get_transaction_count(client.account)
    agg = aggregator_for(deployed, {
        "n1": FakeNode(k1, client.chain_id, deployed.market, holds=3, base_time=now, variant=1),
        "n2": FakeNode(k2, client.chain_id, deployed.market, holds=3, base_time=now, variant=2),  # other bytes
        "n3": FakeNode(OUTSIDER_KEY, client.chain_id, deployed.market, holds=3, base_time=now, variant=1),
    })
    outcome = agg.settle_rental(rental.rental_id)
    assert outcome.status == "no_quorum"
    assert "not in signer set" in outcome.notes["http://n3"]
    assert client.w3.eth.get_transaction_count(client.account) == nonce  # nothing sent


def test_settle_batch_of_two_rentals_in_one_transaction(deployed, now):
    first, second = open_active_rental(deployed), open_active_rental(deployed)
    chain_id = deployed.client(SUBMITTER).chain_id
    k1, k2, k3 = deployed.node_keys
    agg = aggregator_for(deployed, {  # n3 is down
        "n1": FakeNode(k1, chain_id, deployed.market, holds=4, base_time=now),
        "n2": FakeNode(k2, chain_id, deployed.market, holds=4, base_time=now),
    })
    outcomes = agg.settle_batch([first.rental_id, second.rental_id])
    assert [o.status for o in outcomes] == ["settled", "settled"], [o.detail for o in outcomes]
    assert outcomes[0].tx_hash == outcomes[1].tx_hash
    assert all(o.payment == 40 * 1000 for o in outcomes)
    print(f"\nsettleBatch of 2 reports: gas {outcomes[0].gas_used}")
    again = agg.settle_batch([first.rental_id, second.rental_id])
    assert [o.status for o in again] == ["nothing_new", "nothing_new"]


def test_fault_reports_slash_once(deployed, now):
    rental = open_active_rental(deployed)
    chain_id = deployed.client(SUBMITTER).chain_id
    k1, k2, k3 = deployed.node_keys
    observed = int(deployed.client(SUBMITTER).get_rental(rental.rental_id)["startedAt"])  # within the rental
    agg = aggregator_for(deployed, {
        "n1": FakeNode(k1, chain_id, deployed.market, holds=2, base_time=now, fault_observed_at=observed),
        "n2": FakeNode(k2, chain_id, deployed.market, holds=2, base_time=now, fault_observed_at=observed),
        "n3": FakeNode(k3, chain_id, deployed.market, holds=2, base_time=now, fault_observed_at=observed),
    })
    outcomes = agg.submit_faults(rental.rental_id)
    assert [(o.status, o.fault_id) for o in outcomes] == [("slashed", 0)]
    assert len(outcomes[0].signers) == 2
    # held for the rental (bounded by its collateral); the renter's share is paid at finalization
    assert 0 < agg.client.get_rental(rental.rental_id)["slashed"] <= agg.client.get_rental(rental.rental_id)["collateral"]
    assert agg.fault_cursor[rental.rental_id] == 1  # decided: not looked at again
    assert agg.submit_faults(rental.rental_id) == []
    agg.fault_cursor.clear()  # a restarted aggregator reads the chain instead
    assert [o.status for o in agg.submit_faults(rental.rental_id)] == ["already_settled"]


def test_a_failed_end_challenge_slashes_an_ended_rental_once_within_its_grace(deployed, now):
    rental = open_active_rental(deployed)
    client = deployed.client(SUBMITTER)
    advance_chain(deployed, 100)
    deployed.client(RENTER).end_rental(rental.rental_id)
    ended_at = int(client.get_rental(rental.rental_id)["endedAt"])  # observedAt: the end, inside the rental
    keys = deployed.node_keys
    agg = aggregator_for(deployed, {name: FakeNode(key, client.chain_id, deployed.market, holds=2, base_time=now,
                                                   fault_observed_at=ended_at)
                                    for name, key in zip(("n1", "n2", "n3"), keys)})
    (outcome,) = agg.submit_end_fault(rental.rental_id)
    assert (outcome.status, outcome.fault_id) == ("slashed", END_CHALLENGE_FAULT_ID), outcome.detail
    after = client.get_rental(rental.rental_id)
    assert 0 < after["slashed"] <= after["collateral"]
    assert [o.status for o in agg.submit_end_fault(rental.rental_id)] == ["already_settled"]
    assert agg.fault_cursor.get(rental.rental_id, 0) == 0  # the metered faults' cursor is not touched


def test_ended_rental_settles_the_last_report_that_ends_by_the_end(deployed, now):
    rental = open_active_rental(deployed)
    client = deployed.client(SUBMITTER)
    renter = deployed.client(RENTER)
    advance_chain(deployed, 100)  # the rental runs 100 s: reports up to 7 fit before its end
    renter.end_rental(rental.rental_id)
    ended_at = int(client.get_rental(rental.rental_id)["endedAt"])
    base = ended_at - 10 * 7 - 3  # reports 1..7 end by ended_at, 8.. after it
    k1, k2, k3 = deployed.node_keys
    agg = aggregator_for(deployed, {
        "n1": FakeNode(k1, client.chain_id, deployed.market, holds=12, base_time=base, report_base=base),
        "n2": FakeNode(k2, client.chain_id, deployed.market, holds=12, base_time=base, report_base=base),
        "n3": FakeNode(k3, client.chain_id, deployed.market, holds=12, base_time=base, report_base=base),
    })
    outcome = agg.settle_rental(rental.rental_id)
    assert outcome.status == "settled", outcome.detail
    assert outcome.sequence == 7
    assert client.get_rental(rental.rental_id)["sequence"] == 7


def test_chain_services_follow_settle_and_forget_finalized_rentals(deployed, now, tmp_path):
    from oracle.node.chain_services import ChainServices
    from oracle.node.rentals import InMemoryRentalRegistry

    from .conftest import FAST_POLICY, PROVIDER

    k1, k2, _ = deployed.node_keys
    chain_id = deployed.client(SUBMITTER).chain_id
    nodes = {"n1": FakeNode(k1, chain_id, deployed.market, holds=3, base_time=now),
             "n2": FakeNode(k2, chain_id, deployed.market, holds=3, base_time=now)}
    probe = aggregator_for(deployed, nodes)
    registry = InMemoryRentalRegistry()
    services = ChainServices(
        rpc_url=deployed.chain.url, node_key=k1, market_address=deployed.market,
        node_urls=probe.node_urls, registries=[registry], db_path=str(tmp_path / "node.sqlite3"),
        start_block=deployed.deployment.block_number, confirmations=0, poll_interval_s=0.05,
        settle_interval_s=0.2, submit_delay_s=0.0, slash_faults=False, policy=FAST_POLICY, http=probe.http,
    ).start()
    try:
        rental = open_active_rental(deployed)
        advance_chain(deployed)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(
                o.rental_id == rental.rental_id and o.status == "settled" for o in services.loop.outcomes):
            time.sleep(0.1)
        settled = [o for o in services.loop.outcomes if o.rental_id == rental.rental_id and o.status == "settled"]
        assert settled and settled[0].sequence == 3, [(o.status, o.detail) for o in services.loop.outcomes]
        assert registry.get(rental.rental_id).agent == deployed.client(PROVIDER).get_offer(rental.offer_id)["agent"]
        assert services.client.get_rental(rental.rental_id)["sequence"] == 3
        # ended and finalized: the loop stops considering it
        rental.renter.end_rental(rental.rental_id)
        deployed.chain.increase_time(rental.provider.rental_terms(rental.rental_id)["settlementGrace"] + 1)
        deployed.chain.mine(1)
        rental.provider.finalize_rental(rental.rental_id)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and rental.rental_id in services.feed.settleable():
            time.sleep(0.05)
        assert rental.rental_id not in services.feed.settleable()
        assert services.store.rental_statuses("market")[rental.rental_id] == "closed"
    finally:
        services.stop()
