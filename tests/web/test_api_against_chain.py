"""Every number the web API shows for the market, a rental and a provider equals the chain's
own reads (real anvil, real market, the real follower feeding the SQLite index)."""

from __future__ import annotations

import pytest
from eth_account import Account

from oracle.chain.anvil import ANVIL_KEYS
from oracle.chain.client import OfferTerms
from oracle.protocol import EndReason, RentalStatus
from oracle.units import format_amount

from .conftest import PROVIDER, RENTER, SUBMITTER, make_harness, node_addresses, signed_report

pytestmark = pytest.mark.integration

H100 = "NVIDIA H100 80GB HBM3"
L4 = "NVIDIA L4"


@pytest.fixture(scope="module")
def scene(deployed, tmp_path_factory):
    """Two offers, one rental with two settlements (settle, then settleBatch) and a top-up."""
    provider, renter, submitter = deployed.client(PROVIDER), deployed.client(RENTER), deployed.client(SUBMITTER)
    agent = Account.from_key(ANVIL_KEYS[4]).address
    provider.stake(deployed.token, provider.min_stake_per_gpu(deployed.token) * 6)
    h100, _ = provider.create_offer(OfferTerms(
        gpu_model=H100, gpu_count=2, payment_token=deployed.token, price_per_gpu_hour=2_000_000,
        price_per_kwh=150_000, region="eu-north-1", grid_intensity_g_per_kwh=45, max_duration_seconds=86_400,
        min_uptime_bps=9_500, agent=agent))
    l4, _ = provider.create_offer(OfferTerms(
        gpu_model=L4, gpu_count=1, payment_token=deployed.token, price_per_gpu_hour=300_000, price_per_kwh=0,
        region="us-east-1", grid_intensity_g_per_kwh=380, max_duration_seconds=3_600, min_uptime_bps=9_000,
        agent=agent))
    rental_id, _ = renter.open_rental(h100, gpu_count=1, budget=5_000_000)
    started = provider.start_rental(rental_id)
    started_at = int(started.events["RentalStarted"][0]["startedAt"])
    deployed.chain.set_next_timestamp(started_at + 200)
    deployed.chain.mine()
    r1, s1 = signed_report(deployed, rental_id, 1, started_at + 60, available=60, busy=45,
                           energy_mj=60 * 600_000, carbon_mg=450, passed=1)
    first = submitter.settle(r1, s1)
    from oracle.attestation.eip712 import usage_batch_digest
    from oracle.attestation.signing import sign_digest

    r2, _ = signed_report(deployed, rental_id, 2, started_at + 120, available=118, busy=100,
                          energy_mj=118 * 650_000, carbon_mg=960, uptime_bps=9_833, passed=1, failed=1)
    digest = usage_batch_digest([r2], deployed.chain.chain_id, deployed.market)
    from .conftest import NODE_KEYS

    second = submitter.settle_batch([r2], [sign_digest(k, digest) for k in NODE_KEYS[1:3]])
    renter.top_up(rental_id, 1_000_000)
    harness = make_harness(deployed, tmp_path_factory.mktemp("web"))
    harness.sync()
    yield {"harness": harness, "h100": h100, "l4": l4, "rental_id": rental_id, "started_at": started_at,
           "reports": [r1, r2], "txs": [first.tx_hash, second.tx_hash], "provider": provider.account,
           "renter": renter.account, "client": provider}
    harness.indexer.stop()
    harness.store.close()


def test_market_lists_each_offer_with_the_chain_terms_and_derived_prices(scene, deployed):
    web, chain = scene["harness"], scene["client"]
    body = web.get("/api/v1/offers", sort="offer_id")
    by_id = {o["offer_id"]: o for o in body["items"]}
    for offer_id in (scene["h100"], scene["l4"]):
        stored = chain.get_offer(offer_id)
        item = by_id[offer_id]
        assert item["price_per_gpu_hour"] == int(stored["pricePerGpuHour"])
        assert item["price_per_kwh"] == int(stored["pricePerKwh"])
        assert item["gpu_count"] == int(stored["gpuCount"])
        assert item["memory_mib"] == int(stored["memoryMib"])
        assert item["grid_intensity_g_per_kwh"] == int(stored["gridIntensityGPerKwh"])
        assert item["provider"] == stored["provider"]
        assert item["version"] == int(stored["version"])
        power = item["typical_power_w"]
        assert item["effective_price_per_gpu_hour"] == int(stored["pricePerGpuHour"]) + int(stored["pricePerKwh"]) * power // 1000
        assert item["price_per_gpu_hour_display"] == format_amount(int(stored["pricePerGpuHour"]), 6, "tUSD")
        assert item["reputation"]["score_bps"] == chain.reputation_score(stored["provider"])
    assert by_id[scene["h100"]]["typical_power_w"] == 700
    assert by_id[scene["h100"]]["effective_price_per_gpu_hour"] == 2_000_000 + 150_000 * 700 // 1000


def test_market_sorts_and_filters_by_price_model_and_region(scene):
    web = scene["harness"]
    cheap_first = web.get("/api/v1/offers", sort="effective_price_per_gpu_hour")["items"]
    prices = [o["effective_price_per_gpu_hour"] for o in cheap_first]
    assert prices == sorted(prices)
    dear_first = web.get("/api/v1/offers", sort="effective_price_per_gpu_hour", order="desc")["items"]
    assert [o["offer_id"] for o in dear_first] == [o["offer_id"] for o in reversed(cheap_first)]
    only_l4 = web.get("/api/v1/offers", gpu_model=L4)
    assert [o["offer_id"] for o in only_l4["items"]] == [scene["l4"]] and only_l4["total"] == 1
    eu = web.get("/api/v1/offers", region="eu-north-1", max_grid_intensity_g_per_kwh=100)
    assert [o["offer_id"] for o in eu["items"]] == [scene["h100"]]
    assert web.get("/api/v1/offers", max_price_per_gpu_hour=299_999)["total"] == 0
    facets = {f["name"]: f["count"] for f in web.get("/api/v1/offers")["facets"]["gpu_models"]}
    assert facets == {H100: 1, L4: 1}


def test_market_says_what_a_budget_buys_in_hours(scene):
    web = scene["harness"]
    body = web.get("/api/v1/offers", budget="21.05", gpus=1, sort="budget_hours")
    h100 = next(o for o in body["items"] if o["offer_id"] == scene["h100"])
    # 21.05 tUSD at 2.105 tUSD per GPU-hour at 700 W: 10 hours on one GPU
    assert h100["budget_hours"] == {"hours_x100": 1000, "gpus": 1, "display": "about 10.00 h"}
    hours = [o["budget_hours"]["hours_x100"] for o in body["items"]]
    assert hours == sorted(hours, reverse=True)


def test_a_bad_market_parameter_is_a_400_with_a_sentence(scene):
    web = scene["harness"]
    resp = web.client.get("/api/v1/offers", params={"sort": "colour"})
    assert resp.status_code == 400 and resp.json()["field"] == "sort"
    resp = web.client.get("/api/v1/offers", params={"budget": "1.1234567"})
    assert resp.status_code == 400 and "decimals" in resp.json()["error"]


def test_rental_shows_the_chain_rental_its_budget_left_and_when_it_runs_out(scene, deployed):
    web, chain = scene["harness"], scene["client"]
    rental_id = scene["rental_id"]
    stored = chain.get_rental(rental_id)
    body = web.get(f"/api/v1/rentals/{rental_id}")
    assert body["status"] == int(stored["status"]) == RentalStatus.ACTIVE and body["status_label"] == "active"
    assert body["budget"] == int(stored["budget"]) == 6_000_000
    assert body["paid"] == int(stored["paid"])
    assert body["remaining"] == int(stored["budget"]) - int(stored["paid"])
    assert body["available_gpu_seconds"] == int(stored["availableGpuSeconds"])
    assert body["last_sequence"] == int(stored["sequence"]) == 2
    assert body["energy_mj"] == scene["reports"][1].energy_millijoules
    assert body["challenges_failed"] == 1
    # observed spend: paid between the two settlements over their periodEnd difference
    settled = [int(e["payment"]) for e in web.get(f"/api/v1/rentals/{rental_id}/settlements")["items"]]
    per_s_num, per_s_den = settled[1], 60
    assert body["burn"]["basis"] == "observed"
    assert body["burn"]["per_hour"] == per_s_num * 3600 // per_s_den
    expected_out = scene["reports"][1].period_end + body["remaining"] * per_s_den // per_s_num
    assert body["runs_out_at"] == expected_out
    assert body["runs_out_in_s"] == max(0, expected_out - body["now"])
    assert body["txs"]["top_ups"] and body["txs"]["started"]


def test_settlements_carry_their_transaction_reports_and_recovered_signers(scene):
    web = scene["harness"]
    items = web.get(f"/api/v1/rentals/{scene['rental_id']}/settlements")["items"]
    assert [i["tx_hash"] for i in items] == scene["txs"]
    assert [i["method"] for i in items] == ["settle", "settleBatch"]
    assert [i["report"]["energy_mj"] for i in items] == [r.energy_millijoules for r in scene["reports"]]
    from eth_account import Account

    from .conftest import NODE_KEYS

    assert sorted(items[0]["signers"]) == sorted(node_addresses(2))
    assert sorted(items[1]["signers"]) == sorted(Account.from_key(k).address for k in NODE_KEYS[1:3])
    rental = scene["client"].get_rental(scene["rental_id"])
    assert items[-1]["paid_after"] == int(rental["paid"])
    assert sum(i["payment"] for i in items) == int(rental["paid"])


def test_series_gives_power_and_utilization_between_settled_reports(scene):
    web = scene["harness"]
    points = web.get(f"/api/v1/rentals/{scene['rental_id']}/series")["points"]
    r1, r2 = scene["reports"]
    assert [p["sequence"] for p in points] == [1, 2]
    assert points[0]["power_w"] == r1.energy_millijoules // (60 * 1000)  # 600 W
    assert points[1]["power_w"] == (r2.energy_millijoules - r1.energy_millijoules) // (60 * 1000)
    assert points[1]["utilization_bps"] == (r2.busy_gpu_seconds - r1.busy_gpu_seconds) * 10_000 // (
        r2.available_gpu_seconds - r1.available_gpu_seconds)
    # the page asks only for what is new: the same point, averaged from the report before it
    assert web.get(f"/api/v1/rentals/{scene['rental_id']}/series", since_sequence=1)["points"] == points[1:]
    # a long rental's chart is thinned to evenly spaced reports, the last one kept (cumulative values stay exact)
    thinned = web.get(f"/api/v1/rentals/{scene['rental_id']}/series", max_points=2)["points"]
    assert [p["sequence"] for p in thinned] == [1, 2]


def test_receipt_is_the_last_settled_report_with_its_signers_and_downloads(scene):
    web = scene["harness"]
    resp = web.client.get(f"/api/v1/rentals/{scene['rental_id']}/receipt", params={"download": 1})
    assert resp.status_code == 200
    assert "attachment" in resp.headers["content-disposition"]
    body = resp.json()
    r2 = scene["reports"][1]
    assert body["energy_mj"] == r2.energy_millijoules and body["carbon_mg"] == r2.carbon_milligrams
    assert body["telemetry_hash"] == "0x" + r2.telemetry_hash.hex()
    assert body["settlement_tx"] == scene["txs"][1]
    assert body["grid_intensity_g_per_kwh"] == 45 and body["threshold"] == 2


def test_provider_page_shows_stake_offers_rentals_and_earnings_as_the_chain_has_them(scene):
    web, chain = scene["harness"], scene["client"]
    body = web.get(f"/api/v1/providers/{scene['provider']}")
    stake = chain.stake_of(scene["provider"])
    assert body["stake"]["active"] == int(stake["active"])
    assert body["stake"]["locked"] == int(stake["locked"])
    assert body["stake"]["unbonding"] == int(stake["unbonding"])
    assert body["stake"]["listed_gpus"] == int(stake["listedGpus"]) == 3
    assert body["stake"]["required"] == chain.required_stake(scene["provider"], 3)
    assert {o["offer_id"] for o in body["offers"]} == {scene["h100"], scene["l4"]}
    assert [r["rental_id"] for r in body["rentals"]["active"]] == [scene["rental_id"]]
    rental = chain.get_rental(scene["rental_id"])
    earned = int(rental["paid"]) - int(rental["paid"]) * int(rental["feeBps"]) // 10_000
    (earnings,) = body["earnings"]
    assert earnings["earned"] == earned
    assert earnings["claimable"] == chain.claimable(scene["rental_id"])
    assert body["verification"]["challenges_passed"] == 1 and body["verification"]["challenges_failed"] == 1


def test_a_waiting_rental_shows_its_start_deadline_on_the_provider_page(scene, deployed):
    web = scene["harness"]
    renter = deployed.client(RENTER)
    rental_id, _ = renter.open_rental(scene["l4"], gpu_count=1, budget=1_000_000)
    web.sync()
    body = web.get(f"/api/v1/providers/{scene['provider']}")
    waiting = {r["rental_id"]: r for r in body["rentals"]["waiting_for_start"]}
    stored = renter.get_rental(rental_id)
    assert waiting[rental_id]["start_deadline"] == int(stored["startDeadline"])
    assert waiting[rental_id]["start_deadline_in_s"] == int(stored["startDeadline"]) - body["now"]
    renter.cancel_rental(rental_id)
    web.sync()
    assert web.get(f"/api/v1/rentals/{rental_id}")["status"] == int(renter.get_rental(rental_id)["status"]) == RentalStatus.CANCELLED


def test_network_shows_signer_set_and_params_from_the_index(scene, deployed):
    web, chain = scene["harness"], scene["client"]
    body = web.get("/api/v1/network")
    version, threshold, signers = chain.view("signerSet")
    assert body["signer_set"]["version"] == version and body["signer_set"]["threshold"] == threshold
    assert [s["address"] for s in body["signer_set"]["signers"]] == list(signers)
    params = chain.params()
    assert body["params"]["protocol_fee_bps"] == int(params["protocolFeeBps"])
    assert body["params"]["settlement_grace_s"] == int(params["settlementGrace"])


def test_a_rental_whose_budget_runs_out_shows_ended_by_budget_with_nothing_left(scene, deployed):
    web, provider = scene["harness"], deployed.client(PROVIDER)
    renter, submitter = deployed.client(RENTER), deployed.client(SUBMITTER)
    rental_id, _ = renter.open_rental(scene["h100"], gpu_count=1, budget=10_000)  # 0.01 tUSD: 18 s at 2 tUSD/h
    started_at = int(provider.start_rental(rental_id).events["RentalStarted"][0]["startedAt"])
    deployed.chain.set_next_timestamp(started_at + 70)
    deployed.chain.mine()
    report, sigs = signed_report(deployed, rental_id, 1, started_at + 60, available=60, busy=60,
                                 energy_mj=60 * 700_000, carbon_mg=500)
    submitter.settle(report, sigs)
    web.sync()
    stored = renter.get_rental(rental_id)
    body = web.get(f"/api/v1/rentals/{rental_id}")
    assert body["status"] == int(stored["status"]) == RentalStatus.ENDED
    assert body["end_reason"] == int(stored["endReason"]) == EndReason.BUDGET_EXHAUSTED
    assert body["end_reason_label"] == EndReason.BUDGET_EXHAUSTED.label
    assert body["paid"] == int(stored["paid"]) == 10_000 and body["remaining"] == 0
    assert body["runs_out_at"] is None and body["ended_at"] == int(stored["endedAt"])


def test_a_provider_withdrawal_claims_the_running_rentals_earnings_first(scene, deployed):
    web, provider = scene["harness"], deployed.client(PROVIDER)
    # the scene's running rental and the one its budget ended both have earnings not yet credited
    claimable = sum(provider.claimable(i) for i in range(1, provider.rental_count() + 1))
    assert provider.claimable(scene["rental_id"]) > 0 and claimable > provider.claimable(scene["rental_id"])
    resp = web.client.post("/api/v1/tx/withdraw", json={"from": provider.account, "token": deployed.token})
    assert resp.status_code == 200, resp.text
    txs = resp.json()["txs"]
    assert [t["function"] for t in txs][0] == "claim" and txs[-1]["function"] in ("withdraw", "withdrawTo")
    before = provider.balance_of(deployed.token, provider.account)
    credited = provider.withdrawable(provider.account, deployed.token)
    w3 = web.state.w3
    for tx in txs:  # as the page's wallet sends them
        digest = w3.eth.send_transaction({"from": provider.account, "to": tx["to"], "data": tx["data"]})
        assert w3.eth.wait_for_transaction_receipt(digest)["status"] == 1
    assert provider.balance_of(deployed.token, provider.account) == before + credited + claimable
    assert provider.claimable(scene["rental_id"]) == 0
    web.sync()
    body = web.get(f"/api/v1/providers/{provider.account}")
    earnings = next(e for e in body["earnings"] if e["token"]["address"] == deployed.token)
    assert earnings["withdrawn"] == credited + claimable
