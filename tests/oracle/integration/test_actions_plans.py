"""Plans are what a browser wallet sends: ``plan_*`` reads the chain for an account whose key
gpurent never sees, and the wallet (here anvil's unlocked dev account behind
``eth_sendTransaction``, as an EIP-1193 provider forwards it) sends each TxRequest as JSON."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from eth_account import Account

from oracle.actions import offers, rentals, staking, views
from oracle.actions.context import MarketView
from oracle.chain.anvil import ANVIL_KEYS
from oracle.chain.client import OfferTerms
from oracle.deployment import save_deployment

from .conftest import PROVIDER, RENTER, DeployedMarket, deploy

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def market(chain) -> DeployedMarket:
    return deploy(chain)


def _wallet_sends(deployed: DeployedMarket, account: str, plan) -> list[dict]:
    receipts = []
    for request in plan:
        tx = {"from": account, **{k: v for k, v in request.as_json().items() if k in ("to", "data", "value")}}
        tx_hash = deployed.chain.rpc("eth_sendTransaction", [tx])
        receipt = None
        for _ in range(200):  # a wallet awaits the receipt (anvil mines it a moment later)
            receipt = deployed.chain.rpc("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None:
                break
            time.sleep(0.05)
        assert receipt is not None and int(receipt["status"], 16) == 1, request.label
        receipts.append(receipt)
    return receipts


def test_a_browser_wallet_stakes_lists_and_rents_from_plans(market: DeployedMarket, tmp_path: Path):
    deployments = tmp_path / "deployments.json"
    save_deployment(market.deployment, deployments)
    provider = Account.from_key(ANVIL_KEYS[PROVIDER]).address
    renter = Account.from_key(ANVIL_KEYS[RENTER]).address
    as_provider = MarketView.connect(market.chain.url, deployments=deployments, account=provider)
    assert not hasattr(as_provider, "journal")  # a view: nothing can be signed or sent through it

    plan = staking.plan_stake(as_provider, 300_000_000)
    assert [r.function for r in plan] == ["approve", "stake"] and all(r.label for r in plan)
    _wallet_sends(market, provider, plan)
    assert views.stake(as_provider, provider).active == 300_000_000
    assert staking.plan_stake(as_provider, 100)[0].function == "approve"  # the exact approval was pulled in full

    terms = OfferTerms(gpu_model="NVIDIA H100 80GB HBM3", gpu_count=1, payment_token=market.token,
                       price_per_gpu_hour=3_600_000, price_per_kwh=0, region="SE", grid_intensity_g_per_kwh=40,
                       max_duration_seconds=86_400, min_uptime_bps=9_000, agent=provider)
    _wallet_sends(market, provider, offers.plan_create_offer(as_provider, terms))
    offer_id = as_provider.client.offer_count()

    as_renter = MarketView.connect(market.chain.url, deployments=deployments, account=renter)
    plan = rentals.plan_open_rental(as_renter, offer_id, 7_200_000)
    assert [r.function for r in plan] == ["approve", "openRental"]
    assert plan[0].to == market.token and plan[1].to == market.market
    _wallet_sends(market, renter, plan)
    rental = views.rental(as_renter, as_renter.client.rental_count())
    assert (rental.renter, rental.budget, rental.status, rental.token.symbol) == (renter, 7_200_000, "Open", "tUSD")

    _wallet_sends(market, provider, rentals.plan_start_rental(as_provider, rental.rental_id))
    started = views.rental(as_renter, rental.rental_id)
    # 7.2 tUSD at 3.6 tUSD/GPU-hour: the budget lasts 2 hours from the start (nothing settled yet)
    assert started.status == "Active" and started.runs_out_at == started.started_at + 7_200
