"""Indexing from an RPC that keeps only recent state (a non-archive node): reads at an old event's
block fall back to the head, so a fresh index of an old deployment still catches up and shows
what the chain holds now."""

from __future__ import annotations

import pytest
from eth_account import Account

from oracle.chain.anvil import ANVIL_KEYS, Anvil
from oracle.chain.client import OfferTerms

from .conftest import PROVIDER, RENTER, deploy, make_harness

pytestmark = pytest.mark.integration


def test_a_fresh_index_catches_up_on_an_rpc_without_old_state(tmp_path):
    with Anvil(extra_args=["--prune-history", "4"]) as chain:
        deployed = deploy(chain)
        provider, renter = deployed.client(PROVIDER), deployed.client(RENTER)
        provider.stake(deployed.token, provider.min_stake_per_gpu(deployed.token) * 2)
        offer_id, _ = provider.create_offer(OfferTerms(
            gpu_model="NVIDIA L4", gpu_count=2, payment_token=deployed.token, price_per_gpu_hour=400_000,
            price_per_kwh=0, region="eu-north-1", grid_intensity_g_per_kwh=30, max_duration_seconds=86_400,
            min_uptime_bps=9_000, agent=Account.from_key(ANVIL_KEYS[4]).address))
        rental_id, _ = renter.open_rental(offer_id, gpu_count=1, budget=1_000_000)
        provider.start_rental(rental_id)
        chain.mine(12)
        web = make_harness(deployed, tmp_path)
        web.sync()
        assert web.indexer.state_fallbacks > 0  # the old blocks' state was gone
        stored = provider.get_rental(rental_id)
        body = web.get(f"/api/v1/rentals/{rental_id}")
        assert body["status"] == int(stored["status"]) and body["budget"] == int(stored["budget"])
        stake = provider.stake_of(provider.account)
        p = web.get(f"/api/v1/providers/{provider.account}")
        assert (p["stake"]["active"], p["stake"]["locked"], p["stake"]["listed_gpus"]) == (
            int(stake["active"]), int(stake["locked"]), int(stake["listedGpus"]))
        assert web.get(f"/api/v1/offers/{offer_id}")["gpu_count"] == 2
        web.indexer.stop()
        web.store.close()
