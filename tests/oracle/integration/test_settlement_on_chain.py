"""Settlement at scale, fault spam and signer-set rotation against a real market on anvil (issue 9):

- a round's settleBatch is split into transactions of at most the cap, and each settles;
- a slash that would move nothing (the provider's stake is gone, or a usage-flag fault kind) is
  never sent: the node's nonce does not move;
- after a signer-set rotation, real nodes re-sign the sequence they recorded for the old set, so
  an ended rental's final report still settles.
"""

from __future__ import annotations

import httpx
import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from oracle.attestation.eip712 import FaultReport, fault_report_digest
from oracle.attestation.signing import sign_digest
from oracle.node.aggregator import Aggregator
from oracle.node.app import create_app
from oracle.node.attestor import report_fields
from oracle.node.settings import NodeSettings
from oracle.node.testing import chain_batches, shifted, trace_samples

from .conftest import GOVERNANCE, PROVIDER, RENTER, SUBMITTER, open_active_rental
from .test_aggregator import FakeNode, advance_chain, aggregator_for

pytestmark = pytest.mark.integration

AGENT_KEY = bytes.fromhex("a7" * 32)


@pytest.fixture
def now(deployed) -> int:
    return int(deployed.client(SUBMITTER).w3.eth.get_block("latest")["timestamp"]) - 3600


def test_a_round_splits_settle_batch_into_transactions_the_contract_accepts(deployed, now):
    rentals = [open_active_rental(deployed).rental_id for _ in range(5)]
    chain_id = deployed.client(SUBMITTER).chain_id
    k1, k2, _ = deployed.node_keys
    agg = aggregator_for(deployed, {"n1": FakeNode(k1, chain_id, deployed.market, holds=4, base_time=now),
                                    "n2": FakeNode(k2, chain_id, deployed.market, holds=4, base_time=now)})
    agg.max_reports_per_tx = 2
    outcomes = agg.settle_batch(rentals)
    assert [o.status for o in outcomes] == ["settled"] * 5, [o.detail for o in outcomes]
    assert len({o.tx_hash for o in outcomes}) == 3  # 2 + 2 + 1 (the last one alone: a plain settle)
    assert all(agg.client.get_rental(r)["sequence"] == 4 for r in rentals)


class FaultNode(FakeNode):
    """Serves ``faults`` (fault id -> kind) as signed fault reports, paged like a node."""

    def __init__(self, *args, faults: dict[int, int], **kw):
        super().__init__(*args, **kw)
        self.faults = faults

    def handle(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.strip("/").split("/")
        if parts[-1] != "faults":
            return super().handle(request)
        rental_id = int(parts[2])
        start = int(request.url.params.get("from_id", 0))
        limit = int(request.url.params.get("limit", 256))
        out = []
        for fault_id in sorted(self.faults)[start:start + limit]:
            fault = FaultReport(rental_id, fault_id, self.faults[fault_id], self.base_time + fault_id, b"\x33" * 32, 1)
            out.append({"fault_id": fault_id, "signed": self.signed(fault, fault_report_digest(
                fault, self.chain_id, self.market))})
        return httpx.Response(200, json={"rental_id": rental_id, "sequence": self.holds, "faults": out})


def fault_aggregator(deployed, now, faults: dict[int, int], *, observed_from: int | None = None) -> Aggregator:
    chain_id = deployed.client(SUBMITTER).chain_id
    k1, k2, _ = deployed.node_keys
    return aggregator_for(deployed, {
        "n1": FaultNode(k1, chain_id, deployed.market, holds=2, base_time=observed_from or now, faults=faults),
        "n2": FaultNode(k2, chain_id, deployed.market, holds=2, base_time=observed_from or now, faults=faults),
    })


def test_a_usage_flag_fault_is_never_sent_as_a_slash(deployed, now):
    rental = open_active_rental(deployed)
    agg = fault_aggregator(deployed, now, {0: 4})  # IDLE_POWER_BUSY: the renter's own workload
    nonce = agg.client.w3.eth.get_transaction_count(agg.client.account)
    outcomes = agg.submit_faults(rental.rental_id)
    assert [(o.status, o.fault_id) for o in outcomes] == [("not_slashable", 0)]
    assert agg.client.w3.eth.get_transaction_count(agg.client.account) == nonce  # no gas spent


def test_a_slash_that_would_move_nothing_is_never_sent(deployed, now):
    rental = open_active_rental(deployed)
    provider = deployed.client(PROVIDER)
    # More DOWNTIME faults than the provider's whole stake can pay for (10 % of a GPU's minimum each), in
    # one page and one slash window. Whichever bound the market enforces (the stake running out, or
    # since issue 7 one slash per kind and window, bounded by the rental's collateral), every slash
    # past it would move nothing: the node simulates each and never sends those.
    stake = provider.stake_of(provider.account)
    per_slash = provider.min_stake_per_gpu(deployed.token) * 1_000 // 10_000
    count = (int(stake["active"]) + int(stake["unbonding"])) // per_slash + 3
    # observed within the rental (from its start, one second apart; the chain clock moved past
    # them): one DOWNTIME slashes, the others would move nothing (same kind, same slash window)
    started_at = int(provider.get_rental(rental.rental_id)["startedAt"])
    deployed.chain.increase_time(count + 1)
    deployed.chain.mine(1)
    agg = fault_aggregator(deployed, started_at, {i: 1 for i in range(count)})
    agg.max_faults_per_rental = count
    nonce = agg.client.w3.eth.get_transaction_count(agg.client.account)
    outcomes = agg.submit_faults(rental.rental_id)
    slashed = [o for o in outcomes if o.status == "slashed"]
    refused = [o for o in outcomes if o.status == "not_slashable"]
    assert slashed and refused and len(slashed) + len(refused) == count, [(o.status, o.detail) for o in outcomes]
    stake = provider.stake_of(provider.account)
    assert int(stake["active"]) + int(stake["unbonding"]) == 0 or all("revert" in o.detail for o in refused)
    sent = agg.client.w3.eth.get_transaction_count(agg.client.account) - nonce
    assert sent == len(slashed)  # every transaction sent moved stake; none was a no-op
    assert agg.fault_cursor[rental.rental_id] == count  # decided: the next round starts after them


def test_fault_work_per_rental_is_bounded_per_call_and_resumes_at_the_cursor(deployed, now):
    rental = open_active_rental(deployed)
    agg = fault_aggregator(deployed, now, {i: 4 for i in range(100)})  # 100 usage flags: none slashable
    agg.max_faults_per_rental = 16
    first = agg.submit_faults(rental.rental_id)
    assert [o.fault_id for o in first] == list(range(16))
    second = agg.submit_faults(rental.rental_id)
    assert [o.fault_id for o in second] == list(range(16, 32))


# ---------------------------------------------------------------------------- agreement by construction


def test_nodes_read_the_rental_terms_fixed_at_its_start_never_the_live_offer(deployed, tmp_path):
    from oracle.chain.client import OfferTerms
    from oracle.chain.events import CursorStore, EventFollower
    from oracle.node.feed import RentalRegistryFeed
    from oracle.node.rentals import InMemoryRentalRegistry

    provider = deployed.client(PROVIDER)
    rental = open_active_rental(deployed, agent=Account.from_key(AGENT_KEY).address)
    offer = provider.get_offer(rental.offer_id)
    # The provider updates its offer right after the start: another agent, region and grid intensity.
    provider.update_offer(rental.offer_id, OfferTerms(
        gpu_model="NVIDIA H100 80GB HBM3", gpu_count=1, payment_token=deployed.token,
        price_per_gpu_hour=int(offer["pricePerGpuHour"]), price_per_kwh=int(offer["pricePerKwh"]),
        region="us-east-1", grid_intensity_g_per_kwh=400, max_duration_seconds=86_400, min_uptime_bps=9_000,
        agent=Account.from_key(bytes.fromhex("a8" * 32)).address,
    ))
    assert provider.get_offer(rental.offer_id)["agent"] != Account.from_key(AGENT_KEY).address
    # A node that reads only now (it was slower than another) still meters the terms of the start.
    registry = InMemoryRentalRegistry()
    reader = deployed.client(SUBMITTER)
    feed = RentalRegistryFeed(reader, [registry])
    follower = EventFollower(reader.w3, deployed.market, reader.abi, feed, store=CursorStore(tmp_path / "c.sqlite3"),
                             confirmations=0, start_block=deployed.deployment.block_number,
                             event_names=["RentalStarted"])
    follower.poll_once()
    entry = registry.get(rental.rental_id)
    assert entry.agent == Account.from_key(AGENT_KEY).address
    assert (entry.region, entry.grid_intensity_g_per_kwh) == ("eu-north-1", 40)
    assert feed.terms[rental.rental_id].power_limit_w == 700


# ---------------------------------------------------------------------------- operators' gas rebate


def test_a_bonded_node_settles_through_the_operator_registry_and_accrues_its_gas_rebate(deployed, now):
    from oracle.chain.artifacts import get_artifact
    from oracle.chain.contract import BoundContract
    from oracle.node.submit import registry_submitter

    registry_address = deployed.deployment.operator_registry
    assert registry_address
    node = deployed.node_client(0)
    k1, k2, _ = deployed.node_keys
    agg = aggregator_for(deployed, {
        "n1": FakeNode(k1, node.chain_id, deployed.market, holds=4, base_time=now),
        "n2": FakeNode(k2, node.chain_id, deployed.market, holds=4, base_time=now),
    })
    agg.client = node  # the node's own key submits
    submitter = registry_submitter(node, registry_address)
    operator = submitter.operator
    bond = operator.min_bond(deployed.token)
    BoundContract(deployed.client(GOVERNANCE).sender, deployed.token,
                  get_artifact("TestStablecoin").abi).transact("mint", node.account, bond)
    operator.bond(deployed.token, bond)
    assert operator.is_bonded()
    agg.submitter = submitter
    rentals = [open_active_rental(deployed).rental_id for _ in range(2)]
    advance_chain(deployed)  # past the fake reports' periodEnd (10 s per sequence after the start)
    before = operator.earnings(deployed.token).rebate_reports
    outcomes = agg.settle_batch(rentals)
    assert [o.status for o in outcomes] == ["settled", "settled"], [o.detail for o in outcomes]
    assert all(o.payment > 0 for o in outcomes)  # the market's events, read from the registry's tx
    assert operator.earnings(deployed.token).rebate_reports == before + 2
    assert submitter.use_registry


# ---------------------------------------------------------------------------- rotation (last: it moves the
# module's market to signer set v2)


def node_apps(deployed, rental_id: int, start_ms: int, now_ms: int, tmp_path) -> dict[str, TestClient]:
    apps = {}
    for i, key in enumerate(deployed.node_keys):
        settings = NodeSettings(
            dev_mode=True, private_key="0x" + key.hex(), chain_id=deployed.client(SUBMITTER).chain_id,
            market_address=deployed.market, db_path=tmp_path / f"node-{i}.sqlite3", signer_set_version=1,
            rentals=[{"rental_id": rental_id, "agent": Account.from_key(AGENT_KEY).address, "gpu_count": 1,
                      "region": "eu-north-1", "grid_intensity_g_per_kwh": 40, "start_ms": start_ms}],
        )
        apps[f"n{i + 1}"] = TestClient(create_app(settings, clock=lambda: now_ms))
    return apps


def routed(apps: dict[str, TestClient]) -> httpx.Client:
    def route(request: httpx.Request) -> httpx.Response:
        client = apps[request.url.host]
        answer = client.request(request.method, request.url.path, params=request.url.params,
                                content=request.content, headers={"content-type": "application/json"})
        return httpx.Response(answer.status_code, content=answer.content, headers=answer.headers)

    return httpx.Client(transport=httpx.MockTransport(route))


def test_after_a_signer_set_rotation_an_ended_rental_final_report_still_settles(deployed, tmp_path):
    gov, renter = deployed.client(GOVERNANCE), deployed.client(RENTER)
    rental = open_active_rental(deployed, agent=Account.from_key(AGENT_KEY).address)
    started_at = int(gov.get_rental(rental.rental_id)["startedAt"])
    samples = shifted(trace_samples()[:60], started_at * 1000 + 59_000)  # 60 s of telemetry from the start
    deployed.chain.set_next_timestamp(started_at + 120)
    renter.end_rental(rental.rental_id)
    ended_at = int(gov.get_rental(rental.rental_id)["endedAt"])
    batches = chain_batches(AGENT_KEY, rental.rental_id, samples, samples_per_batch=10, market=deployed.market)
    apps = node_apps(deployed, rental.rental_id, started_at * 1000, ended_at * 1000, tmp_path)
    try:
        for client in apps.values():
            for batch in batches:
                assert client.post(f"/v1/rentals/{batch.rental_id}/batches", content=batch.to_wire_bytes()).status_code == 200
        agg = Aggregator(deployed.client(SUBMITTER), [f"http://{h}" for h in apps], http=routed(apps))
        # Every node records and signs the final sequence for signer set v1, but it is not submitted
        recorded = agg.collect_usage(rental.rental_id, max_period_end=ended_at)
        assert recorded.report.signer_set_version == 1 and recorded.report.sequence == len(batches)
        # ... before governance rotates the set (same members, new version).
        signers = [Account.from_key(k).address for k in deployed.node_keys]
        gov.set_signer_set(signers, 2)
        assert gov.signer_set().version == 2
        outcome = agg.settle_rental(rental.rental_id)
        assert outcome.status == "settled", outcome.detail
        assert outcome.sequence == len(batches)
        assert gov.get_rental(rental.rental_id)["sequence"] == len(batches)
        # the v2 report is the v1 content, only the version differs: no two contents per sequence
        v1 = apps["n1"].app.state.node.storage.get_report("usage", rental.rental_id, len(batches), 1)
        v2 = apps["n1"].app.state.node.storage.get_report("usage", rental.rental_id, len(batches), 2)
        f1, f2 = (report_fields(__import__("oracle.node.attestor", fromlist=["x"]).report_from_bytes(
            type(recorded.report), r.body)) for r in (v1, v2))
        assert {k: v for k, v in f1.items() if k != "signer_set_version"} == \
            {k: v for k, v in f2.items() if k != "signer_set_version"}
        assert (f1["signer_set_version"], f2["signer_set_version"]) == (1, 2)
    finally:
        for client in apps.values():
            client.close()
