"""The web index after a reorg (anvil snapshot/revert): what the reorganised blocks said is gone,
what the new blocks say is there, and the derived tables equal a fresh index of the same chain."""

from __future__ import annotations

import pytest
from eth_account import Account

from oracle.chain.anvil import ANVIL_KEYS
from oracle.chain.client import OfferTerms

from .conftest import PROVIDER, RENTER, make_harness

pytestmark = pytest.mark.integration

DERIVED = ("offers", "rentals", "providers", "settlements", "slashes", "ledger", "kv")


def terms(deployed, model: str, price: int, region: str) -> OfferTerms:
    return OfferTerms(gpu_model=model, gpu_count=1, payment_token=deployed.token, price_per_gpu_hour=price,
                      price_per_kwh=0, region=region, grid_intensity_g_per_kwh=50, max_duration_seconds=86_400,
                      min_uptime_bps=9_000, agent=Account.from_key(ANVIL_KEYS[4]).address)


def dump(store) -> dict[str, list[tuple]]:
    out = {}
    for table in DERIVED:
        rows = store.conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
        out[table] = [tuple(r) for r in rows]
    return out


def test_after_a_reorg_the_index_holds_only_the_canonical_chain(deployed, tmp_path):
    provider, renter = deployed.client(PROVIDER), deployed.client(RENTER)
    provider.stake(deployed.token, provider.min_stake_per_gpu(deployed.token) * 4)
    web = make_harness(deployed, tmp_path / "a")
    web.sync()
    snapshot = deployed.chain.snapshot()
    fork_block = provider.w3.eth.block_number + 1

    # the branch that will be reorganised away: an H100 offer and a rental of it
    old_offer, _ = provider.create_offer(terms(deployed, "NVIDIA H100 80GB HBM3", 2_000_000, "eu-north-1"))
    renter.open_rental(old_offer, gpu_count=1, budget=1_000_000)
    web.sync()
    assert web.get(f"/api/v1/offers/{old_offer}")["gpu_model"] == "NVIDIA H100 80GB HBM3"
    assert web.get("/api/v1/rentals")["total"] == 1
    old_head = provider.w3.eth.block_number

    # the reorg: back to the snapshot, another offer under the same id, a longer chain
    assert deployed.chain.revert(snapshot)
    new_offer, _ = provider.create_offer(terms(deployed, "NVIDIA L4", 250_000, "us-east-1"))
    assert new_offer == old_offer
    while provider.w3.eth.block_number <= old_head:
        deployed.chain.mine()
    web.sync()

    assert web.indexer.followers["market"].stats.rewinds == 1
    assert web.indexer.followers["market"].stats.rewound_to[0] <= fork_block
    offer = web.get(f"/api/v1/offers/{new_offer}")
    assert offer["gpu_model"] == "NVIDIA L4" and offer["price_per_gpu_hour"] == 250_000
    assert offer["region"] == "us-east-1"
    assert [h["event"] for h in offer["history"]] == ["OfferCreated"]
    assert web.get("/api/v1/rentals")["total"] == 0
    stake = provider.stake_of(provider.account)
    assert web.get(f"/api/v1/providers/{provider.account}")["stake"]["listed_gpus"] == int(stake["listedGpus"])
    assert web.get("/api/v1/index/status")["rewinds"] == 1

    fresh = make_harness(deployed, tmp_path / "b")
    fresh.sync()
    assert dump(web.store) == dump(fresh.store)
    for harness in (web, fresh):
        harness.indexer.stop()
        harness.store.close()


def test_a_redelivered_event_is_stored_once(deployed, tmp_path):
    provider = deployed.client(PROVIDER)
    web = make_harness(deployed, tmp_path)
    web.sync()
    before = dump(web.store)
    row = web.store.conn.execute("SELECT * FROM events ORDER BY block DESC, log_index DESC LIMIT 1").fetchone()
    import json

    added = web.store.add_event(source=row["source"], name=row["name"], block=row["block"], log_index=row["log_index"],
                                tx_hash=row["tx_hash"], ts=row["ts"], args=json.loads(row["args"]),
                                extra=json.loads(row["extra"]))
    assert added is False
    assert dump(web.store) == before
    assert provider.account  # the deployment is live
    web.indexer.stop()
    web.store.close()


def test_events_beyond_the_cursor_are_dropped_at_start_and_read_again(deployed, tmp_path):
    """A crash between the follower's cursor rewind and the index's (or between storing an event
    and moving the cursor) leaves events the cursor does not cover: the next start drops them and
    the follower delivers the chain's again."""
    from oracle.chain.events import CursorStore

    provider = deployed.client(PROVIDER)
    web = make_harness(deployed, tmp_path)
    web.sync()
    provider.create_offer(terms(deployed, "NVIDIA L40S", 700_000, "eu-west-1"))
    web.sync()
    complete = dump(web.store)
    last = web.store.conn.execute("SELECT MAX(block) FROM events").fetchone()[0]
    web.indexer.stop()
    web.store.close()

    cursor = CursorStore(tmp_path / "web-index.sqlite")
    cursor.rewind("web-market", last)  # the cursor went back, the index kept the events (a crash)
    cursor.close()
    again = make_harness(deployed, tmp_path)
    assert again.store.conn.execute("SELECT COUNT(*) FROM events WHERE block>=?", (last,)).fetchone()[0] == 0
    again.sync()
    assert dump(again.store) == complete
    again.indexer.stop()
    again.store.close()


def test_a_reorganised_settlement_leaves_no_trace_in_the_rental_its_series_or_the_provider(deployed, tmp_path):
    from .conftest import SUBMITTER, signed_report

    provider, renter, submitter = deployed.client(PROVIDER), deployed.client(RENTER), deployed.client(SUBMITTER)
    provider.stake(deployed.token, provider.min_stake_per_gpu(deployed.token) * 2)
    offer_id, _ = provider.create_offer(terms(deployed, "NVIDIA H100 80GB HBM3", 3_600_000, "eu-north-1"))
    rental_id, _ = renter.open_rental(offer_id, gpu_count=1, budget=5_000_000)
    started_at = int(provider.start_rental(rental_id).events["RentalStarted"][0]["startedAt"])
    deployed.chain.set_next_timestamp(started_at + 100)
    deployed.chain.mine()
    web = make_harness(deployed, tmp_path / "a")
    web.sync()
    snapshot = deployed.chain.snapshot()
    gone, sigs = signed_report(deployed, rental_id, 1, started_at + 90, available=90, busy=90, energy_mj=63_000_000,
                               carbon_mg=900, passed=3)
    submitter.settle(gone, sigs)
    web.sync()
    assert web.get(f"/api/v1/rentals/{rental_id}")["energy_mj"] == 63_000_000
    old_head = provider.w3.eth.block_number

    assert deployed.chain.revert(snapshot)
    kept, sigs = signed_report(deployed, rental_id, 1, started_at + 80, available=40, busy=10, energy_mj=8_000_000,
                               carbon_mg=100)
    submitter.settle(kept, sigs)
    while provider.w3.eth.block_number <= old_head:
        deployed.chain.mine()
    web.sync()
    body = web.get(f"/api/v1/rentals/{rental_id}")
    stored = provider.get_rental(rental_id)
    assert (body["energy_mj"], body["available_gpu_seconds"], body["paid"]) == (
        8_000_000, int(stored["availableGpuSeconds"]), int(stored["paid"]))
    assert body["challenges_passed"] == 0
    points = web.get(f"/api/v1/rentals/{rental_id}/series")["points"]
    assert [(p["sequence"], p["energy_mj"]) for p in points] == [(1, 8_000_000)]
    (settlement,) = web.get(f"/api/v1/rentals/{rental_id}/settlements")["items"]
    assert settlement["payment"] == int(stored["paid"])
    assert web.get(f"/api/v1/providers/{provider.account}")["verification"]["challenges_passed"] == 0
    fresh = make_harness(deployed, tmp_path / "b")
    fresh.sync()
    assert dump(web.store) == dump(fresh.store)
    for harness in (web, fresh):
        harness.indexer.stop()
        harness.store.close()
