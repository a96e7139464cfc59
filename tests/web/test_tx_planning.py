"""Transactions planned by the server and sent as a browser wallet sends them (EIP-1193
``eth_sendTransaction`` from an unlocked anvil dev account: no key on the server): a renter opens,
tops up, ends, finalizes and withdraws its refund; a provider stakes, lists and withdraws an offer.
Each step's effect is read back from the chain and from the index."""

from __future__ import annotations

import pytest
from eth_account import Account

from oracle.chain.anvil import ANVIL_KEYS
from oracle.protocol import RentalStatus

from .conftest import PROVIDER, RENTER

pytestmark = pytest.mark.integration

AGENT = Account.from_key(ANVIL_KEYS[4]).address


def send(web, plan: dict) -> list[str]:
    """What the page does with a plan: each transaction in order, each mined before the next."""
    w3 = web.state.w3
    hashes = []
    for tx in plan["txs"]:
        digest = w3.eth.send_transaction({"from": plan["from"], "to": tx["to"], "data": tx["data"],
                                          "value": int(tx["value"], 16)})
        receipt = w3.eth.wait_for_transaction_receipt(digest, timeout=30)
        assert receipt["status"] == 1, tx["label"]
        hashes.append(digest.to_0x_hex())
    web.sync()
    return hashes


def plan(web, action: str, **body) -> dict:
    resp = web.client.post(f"/api/v1/tx/{action}", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_a_provider_stakes_and_lists_an_offer_from_the_browser(web, deployed):
    provider = deployed.client(PROVIDER)
    minimum = provider.min_stake_per_gpu(deployed.token)
    staked = plan(web, "stake", **{"from": provider.account, "amount_raw": str(minimum * 2)})
    assert [t["function"] for t in staked["txs"]][-1] == "stake"
    before = int(provider.stake_of(provider.account)["active"])
    send(web, staked)
    assert int(provider.stake_of(provider.account)["active"]) == before + minimum * 2
    listed = plan(web, "create_offer", **{
        "from": provider.account, "gpu_model": "NVIDIA L40S", "gpu_count": 2, "payment_token": deployed.token,
        "price_per_gpu_hour": "1.25", "price_per_kwh": "0.1", "region": "eu-west-1",
        "grid_intensity_g_per_kwh": 90, "max_duration_s": 86_400, "min_uptime_bps": 9_500, "agent": AGENT})
    assert listed["summary"]["price_per_gpu_hour"] == 1_250_000
    send(web, listed)
    offer_id = provider.offer_count()
    stored = provider.get_offer(offer_id)
    assert (int(stored["pricePerGpuHour"]), int(stored["pricePerKwh"]), stored["provider"]) == (
        1_250_000, 100_000, provider.account)
    assert web.get(f"/api/v1/offers/{offer_id}")["price_per_gpu_hour_display"] == "1.25 tUSD"
    send(web, plan(web, "withdraw_offer", **{"from": provider.account, "offer_id": offer_id}))
    assert not provider.get_offer(offer_id)["active"]
    assert web.get(f"/api/v1/offers/{offer_id}")["active"] is False


def test_a_renter_opens_tops_up_ends_finalizes_and_withdraws_from_the_browser(web, deployed):
    provider, renter = deployed.client(PROVIDER), deployed.client(RENTER)
    send(web, plan(web, "create_offer", **{
        "from": provider.account, "gpu_model": "NVIDIA H100 80GB HBM3", "gpu_count": 1,
        "payment_token": deployed.token, "price_per_gpu_hour": "2", "price_per_kwh": "0", "region": "eu-north-1",
        "grid_intensity_g_per_kwh": 40, "max_duration_s": 86_400, "min_uptime_bps": 9_000, "agent": AGENT}))
    offer_id = provider.offer_count()
    opened = plan(web, "open_rental", **{"from": renter.account, "offer_id": offer_id, "gpu_count": 1, "budget": "5"})
    assert opened["summary"]["budget"] == 5_000_000 and opened["summary"]["budget_display"] == "5 tUSD"
    assert opened["txs"][-1]["function"] == "openRental"
    wallet_before = renter.balance_of(deployed.token, renter.account)
    send(web, opened)
    rental_id = renter.rental_count()
    assert int(renter.get_rental(rental_id)["budget"]) == 5_000_000
    assert web.get(f"/api/v1/rentals/{rental_id}")["budget"] == 5_000_000
    assert web.get("/api/v1/rentals", renter=renter.account, offer_id=offer_id)["total"] == 1

    provider.start_rental(rental_id)  # the provider's daemon does this
    send(web, plan(web, "top_up", **{"from": renter.account, "rental_id": rental_id, "amount": "1.5"}))
    assert int(renter.get_rental(rental_id)["budget"]) == 6_500_000
    # before any settlement the budget is spent at the list price (2 tUSD/h on one GPU, no energy price)
    live = web.get(f"/api/v1/rentals/{rental_id}")
    stored = renter.get_rental(rental_id)
    assert live["burn"] == {"per_hour": 2_000_000, "per_hour_display": "2 tUSD/h",
                            "basis": "list price at typical power"}
    assert live["runs_out_at"] == int(stored["startedAt"]) + 6_500_000 * 3600 // 2_000_000
    assert live["ends_by"] == "budget"
    ended = send(web, plan(web, "end_rental", **{"from": renter.account, "rental_id": rental_id}))
    assert web.get(f"/api/v1/rentals/{rental_id}")["txs"]["ended"] == ended[-1]
    status = web.client.get(f"/api/v1/tx/{ended[-1]}").json()
    assert status["status"] == "mined" and status["indexed"] is True

    deployed.chain.increase_time(3_601)
    deployed.chain.mine()
    send(web, plan(web, "finalize_rental", **{"from": renter.account, "rental_id": rental_id}))
    assert web.get(f"/api/v1/rentals/{rental_id}")["status"] == RentalStatus.FINALIZED
    refund = renter.withdrawable(renter.account, deployed.token)
    assert refund == 6_500_000  # nothing settled: the whole budget comes back
    send(web, plan(web, "withdraw", **{"from": renter.account, "token": deployed.token}))
    assert renter.withdrawable(renter.account, deployed.token) == 0
    assert renter.balance_of(deployed.token, renter.account) == wallet_before


def test_planning_refusals_are_sentences_naming_the_field(web, deployed):
    renter = deployed.client(RENTER)
    web.sync()
    bad = web.client.post("/api/v1/tx/open_rental", json={"from": renter.account, "offer_id": 1, "gpu_count": 1,
                                                          "budget": "1.0000001"})
    assert bad.status_code == 400 and bad.json()["field"] == "budget" and "decimals" in bad.json()["error"]
    missing = web.client.post("/api/v1/tx/top_up", json={"from": renter.account, "rental_id": 1})
    assert missing.status_code == 400 and missing.json()["field"] == "amount"
    nobody = web.client.post("/api/v1/tx/end_rental", json={"rental_id": 1})
    assert nobody.status_code == 400 and nobody.json()["field"] == "from"
    unknown = web.client.post("/api/v1/tx/mint_money", json={"from": renter.account})
    assert unknown.status_code == 404 and unknown.json()["field"] == "action"
    no_offer = web.client.post("/api/v1/tx/open_rental", json={"from": renter.account, "offer_id": 999,
                                                               "gpu_count": 1, "budget": "1"})
    assert no_offer.status_code == 404 and no_offer.json()["field"] == "offer_id"
    withdrawn = [o for o in web.get("/api/v1/offers", include_withdrawn="true", sort="offer_id")["items"]
                 if not o["active"]]
    refused = web.client.post("/api/v1/tx/open_rental", json={"from": renter.account, "gpu_count": 1, "budget": "1",
                                                              "offer_id": withdrawn[0]["offer_id"]})
    assert refused.status_code == 400 and "OfferBook_OfferInactive" in refused.json()["error"]
