"""A rental through its whole life on the web API, each number checked against the chain: a slash
with its reason, evidence and signers; the end; finalization (refund, fee, reputation); the
renter's and provider's withdrawable balances and their withdrawals."""

from __future__ import annotations

import pytest
from eth_account import Account

from oracle.attestation.eip712 import FaultReport, fault_report_digest
from oracle.attestation.signing import sign_digest
from oracle.chain.anvil import ANVIL_KEYS
from oracle.chain.client import OfferTerms
from oracle.protocol import RentalStatus

from .conftest import NODE_KEYS, PROVIDER, RENTER, SUBMITTER, make_harness, node_addresses, signed_report

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def life(deployed, tmp_path_factory):
    provider, renter, submitter = deployed.client(PROVIDER), deployed.client(RENTER), deployed.client(SUBMITTER)
    provider.stake(deployed.token, provider.min_stake_per_gpu(deployed.token) * 2)
    offer_id, _ = provider.create_offer(OfferTerms(
        gpu_model="NVIDIA A100-SXM4-80GB", gpu_count=1, payment_token=deployed.token, price_per_gpu_hour=3_600_000,
        price_per_kwh=100_000, region="eu-central-1", grid_intensity_g_per_kwh=300, max_duration_seconds=86_400,
        min_uptime_bps=9_000, agent=Account.from_key(ANVIL_KEYS[4]).address))
    rental_id, _ = renter.open_rental(offer_id, gpu_count=1, budget=2_000_000)
    started_at = int(provider.start_rental(rental_id).events["RentalStarted"][0]["startedAt"])
    deployed.chain.set_next_timestamp(started_at + 100)
    deployed.chain.mine()
    report, sigs = signed_report(deployed, rental_id, 1, started_at + 90, available=90, busy=80,
                                 energy_mj=90 * 380_000, carbon_mg=2_850, passed=2, failed=1)
    submitter.settle(report, sigs)
    web = make_harness(deployed, tmp_path_factory.mktemp("life"))
    yield {"web": web, "rental_id": rental_id, "started_at": started_at, "provider": provider, "renter": renter,
           "submitter": submitter, "report": report}
    web.indexer.stop()
    web.store.close()


def test_a_slash_shows_its_kind_evidence_and_signers(life, deployed):
    web, rental_id = life["web"], life["rental_id"]
    fault = FaultReport(rental_id=rental_id, fault_id=7, kind=2, observed_at=life["started_at"] + 50,
                        evidence_hash=b"\xee" * 32, signer_set_version=1)
    digest = fault_report_digest(fault, deployed.chain.chain_id, deployed.market)
    slashed = life["submitter"].slash(fault, [sign_digest(k, digest) for k in NODE_KEYS[:2]])
    amount = int(slashed.events["Slashed"][0]["amount"])
    web.sync()
    body = web.get(f"/api/v1/providers/{life['provider'].account}")
    (item,) = body["slashes"]
    assert (item["rental_id"], item["fault_id"], item["kind"]) == (rental_id, 7, 2)
    assert item["kind_label"] == "energy counter mismatch"
    assert item["amount"] == amount and item["evidence_hash"] == "0x" + "ee" * 32
    assert item["observed_at"] == life["started_at"] + 50 and item["tx_hash"] == slashed.tx_hash
    assert sorted(item["signers"]) == sorted(node_addresses(2))
    assert web.get(f"/api/v1/rentals/{rental_id}/slashes")["items"] == [item]
    assert web.get(f"/api/v1/rentals/{rental_id}")["slashed"] == int(life["provider"].get_rental(rental_id)["slashed"])
    stake = life["provider"].stake_of(life["provider"].account)
    assert body["stake"]["active"] == int(stake["active"]) and body["stake"]["locked"] == int(stake["locked"])


def test_end_and_finalize_show_refund_fee_and_the_new_reputation(life, deployed):
    web, rental_id, renter, provider = life["web"], life["rental_id"], life["renter"], life["provider"]
    renter.end_rental(rental_id)
    web.sync()
    ended = web.get(f"/api/v1/rentals/{rental_id}")
    assert ended["status"] == RentalStatus.ENDED and ended["end_reason_label"] == "ended by the renter"
    assert ended["ended_at"] == int(renter.get_rental(rental_id)["endedAt"])
    assert ended["runs_out_at"] is None
    deployed.chain.increase_time(3_601)
    deployed.chain.mine()
    fin = provider.finalize_rental(rental_id).events["RentalFinalized"][0]
    web.sync()
    body = web.get(f"/api/v1/rentals/{rental_id}")
    assert body["status"] == RentalStatus.FINALIZED and body["status_label"] == RentalStatus.FINALIZED.label
    assert (body["refund"], body["fee"], body["abandoned"]) == (int(fin["refund"]), int(fin["fee"]), bool(fin["abandoned"]))
    assert body["paid"] == int(fin["paid"])
    p = web.get(f"/api/v1/providers/{provider.account}")
    assert p["reputation"]["score_bps"] == provider.reputation_score(provider.account)
    rep = provider.reputation_of(provider.account)
    assert p["reputation"]["completed_rentals"] == int(rep["completedRentals"])
    assert p["reputation"]["slash_count"] == int(rep["slashCount"]) == 1
    assert (p["reputation"]["challenges_passed"], p["reputation"]["challenges_failed"]) == (
        int(rep["challengesPassed"]), int(rep["challengesFailed"])) == (2, 1)
    assert p["stake"]["locked"] == int(provider.stake_of(provider.account)["locked"])
    (earnings,) = p["earnings"]
    assert earnings["claimable"] == 0 and earnings["claimed"] == int(provider.get_rental(rental_id)["claimed"])


def test_withdrawable_balances_are_the_chain_and_withdrawals_are_indexed(life, deployed):
    web, renter, provider = life["web"], life["renter"], life["provider"]
    account = web.get(f"/api/v1/accounts/{renter.account}")
    (w,) = [x for x in account["withdrawable"] if x["token"]["address"] == deployed.token]
    assert w["amount"] == renter.withdrawable(renter.account, deployed.token) > 0
    assert w["amount_display"].endswith("tUSD")
    (b,) = [x for x in account["balances"] if x["token"]["address"] == deployed.token]
    assert b["amount"] == renter.balance_of(deployed.token, renter.account)
    assert [r["rental_id"] for r in account["rentals_as_renter"]] == [life["rental_id"]]
    earned = provider.withdrawable(provider.account, deployed.token)
    provider.withdraw(deployed.token)
    web.sync()
    p = web.get(f"/api/v1/providers/{provider.account}")
    (earnings,) = p["earnings"]
    assert earnings["withdrawn"] == earned
    (pw,) = [x for x in p["withdrawable"] if x["token"]["address"] == deployed.token]
    assert pw["amount"] == 0
