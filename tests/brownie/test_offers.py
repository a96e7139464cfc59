"""IOfferBook: createOffer, updateOffer, withdrawOffer and the views, with every revert path."""

import pytest
from brownie import ZERO_ADDRESS

from conftest import (
    BUDGET,
    MIN_STAKE_PER_GPU,
    OFFER_GPUS,
    PRICE_PER_GPU_HOUR,
    gpu_model,
    offer_terms,
    open_rental,
    stake_for,
)
from market_testkit import event_args, plain, reverts_with


def test_createOffer_stores_terms_and_emits(market, stablecoin, provider2, agent):
    stake_for(market, stablecoin, provider2, gpus=2)
    terms = offer_terms(stablecoin, agent, gpuCount=2, pricePerKwh=0)
    tx = market.createOffer(terms, {"from": provider2})
    oid = tx.events["OfferCreated"]["offerId"]
    assert oid == market.offerCount()
    ev = tx.events["OfferCreated"]
    assert (ev["offerId"], ev["provider"]) == (oid, provider2)
    assert plain(ev["terms"]) == plain(terms)
    offer = market.getOffer(oid)
    assert (offer["provider"], offer["gpuCount"], offer["active"], offer["version"]) == (provider2, 2, True, 0)
    assert (offer["paymentToken"], offer["pricePerGpuHour"], offer["pricePerKwh"]) == (stablecoin, PRICE_PER_GPU_HOUR, 0)
    assert offer["agent"] == agent
    assert plain(offer["gpuModel"]) == plain(gpu_model())
    assert market.stakeOf(provider2)["listedGpus"] == 2


def test_createOffer_ids_start_at_one_and_increase(market, stablecoin, provider, provider2, agent, offer_id):
    assert offer_id == 1
    stake_for(market, stablecoin, provider2, gpus=1)
    tx = market.createOffer(offer_terms(stablecoin, agent, gpuCount=1), {"from": provider2})
    assert tx.events["OfferCreated"]["offerId"] == 2 == market.offerCount()


def test_createOffer_energy_only_price_is_allowed(market, stablecoin, provider2, agent):
    stake_for(market, stablecoin, provider2, gpus=1)
    market.createOffer(offer_terms(stablecoin, agent, gpuCount=1, pricePerGpuHour=0), {"from": provider2})


def test_RevertWhen_createOffer_without_stake(market, stablecoin, provider2, agent):
    with reverts_with("ProviderStaking_InsufficientStake(address,uint256,uint256)", provider2.address, 0, 0):
        market.createOffer(offer_terms(stablecoin, agent, gpuCount=1), {"from": provider2})


def test_RevertWhen_createOffer_stake_does_not_cover_all_listed_gpus(market, stablecoin, provider, agent, offer_id):
    required = MIN_STAKE_PER_GPU * (OFFER_GPUS + 1)
    with reverts_with(
        "ProviderStaking_InsufficientStake(address,uint256,uint256)", provider.address, MIN_STAKE_PER_GPU * OFFER_GPUS, required
    ):
        market.createOffer(offer_terms(stablecoin, agent, gpuCount=1), {"from": provider})


def test_RevertWhen_createOffer_payment_token_not_allowed(market, stablecoin, provider, agent, offer_id, treasury):
    with reverts_with("OfferBook_PaymentTokenNotAllowed(address)", treasury.address):
        market.createOffer(offer_terms(treasury, agent), {"from": provider})


@pytest.mark.parametrize(
    "field,overrides",
    [
        ("gpuCount", {"gpuCount": 0}),
        ("agent", {"agent": ZERO_ADDRESS}),
        ("price", {"pricePerGpuHour": 0, "pricePerKwh": 0}),
        ("maxDurationSeconds", {"maxDurationSeconds": 0}),
        ("minUptimeBps", {"minUptimeBps": 10_001}),
    ],
)
def test_RevertWhen_createOffer_terms_invalid(market, stablecoin, provider2, agent, field, overrides):
    stake_for(market, stablecoin, provider2, gpus=1)
    with reverts_with("OfferBook_InvalidTerms(string)", field):
        market.createOffer(offer_terms(stablecoin, agent, **overrides), {"from": provider2})


# ------------------------------------------------------------------ updateOffer


def test_updateOffer_replaces_terms_bumps_version_and_emits(market, stablecoin, provider, agent, offer_id):
    terms = offer_terms(stablecoin, agent, pricePerGpuHour=2 * PRICE_PER_GPU_HOUR, minUptimeBps=9_900)
    tx = market.updateOffer(offer_id, terms, {"from": provider})
    ev = tx.events["OfferUpdated"]
    assert (ev["offerId"], ev["version"]) == (offer_id, 1)
    assert plain(ev["terms"]) == plain(terms)
    offer = market.getOffer(offer_id)
    assert (offer["version"], offer["pricePerGpuHour"], offer["minUptimeBps"]) == (1, 2 * PRICE_PER_GPU_HOUR, 9_900)


def test_updateOffer_does_not_change_running_rental_prices(market, stablecoin, provider, renter, agent, offer_id):
    rid = open_rental(market, stablecoin, renter, offer_id, BUDGET)
    market.updateOffer(offer_id, offer_terms(stablecoin, agent, pricePerGpuHour=1), {"from": provider})
    assert market.getRental(rid)["pricePerGpuHour"] == PRICE_PER_GPU_HOUR


def test_updateOffer_fewer_gpus_frees_stake(market, stablecoin, provider, agent, offer_id):
    market.updateOffer(offer_id, offer_terms(stablecoin, agent, gpuCount=1), {"from": provider})
    assert market.stakeOf(provider)["listedGpus"] == 1
    market.requestUnstake(MIN_STAKE_PER_GPU * (OFFER_GPUS - 1), {"from": provider})


def test_RevertWhen_updateOffer_more_gpus_than_stake_covers(market, stablecoin, provider, agent, offer_id):
    required = MIN_STAKE_PER_GPU * (OFFER_GPUS + 1)
    with reverts_with(
        "ProviderStaking_InsufficientStake(address,uint256,uint256)", provider.address, MIN_STAKE_PER_GPU * OFFER_GPUS, required
    ):
        market.updateOffer(offer_id, offer_terms(stablecoin, agent, gpuCount=OFFER_GPUS + 1), {"from": provider})


def test_RevertWhen_updateOffer_unknown(market, stablecoin, provider, agent, offer_id):
    with reverts_with("OfferBook_UnknownOffer(uint256)", 99):
        market.updateOffer(99, offer_terms(stablecoin, agent), {"from": provider})


def test_RevertWhen_updateOffer_by_another_account(market, stablecoin, stranger, agent, offer_id):
    with reverts_with("OfferBook_NotProvider(uint256,address)", offer_id, stranger.address):
        market.updateOffer(offer_id, offer_terms(stablecoin, agent), {"from": stranger})


def test_RevertWhen_updateOffer_withdrawn(market, stablecoin, provider, agent, offer_id):
    market.withdrawOffer(offer_id, {"from": provider})
    with reverts_with("OfferBook_OfferInactive(uint256)", offer_id):
        market.updateOffer(offer_id, offer_terms(stablecoin, agent), {"from": provider})


def test_RevertWhen_updateOffer_changes_payment_token(market, gov, stablecoin, provider, agent, offer_id, treasury):
    market.setPaymentToken(treasury, True, {"from": gov})
    with reverts_with("OfferBook_PaymentTokenChanged(address,address)", stablecoin.address, treasury.address):
        market.updateOffer(offer_id, offer_terms(treasury, agent), {"from": provider})


def test_RevertWhen_updateOffer_terms_invalid(market, stablecoin, provider, offer_id):
    with reverts_with("OfferBook_InvalidTerms(string)", "agent"):
        market.updateOffer(offer_id, offer_terms(stablecoin, ZERO_ADDRESS), {"from": provider})


# ------------------------------------------------------------------ withdrawOffer


def test_withdrawOffer_deactivates_releases_gpus_and_emits(market, provider, offer_id):
    tx = market.withdrawOffer(offer_id, {"from": provider})
    assert event_args(tx.events["OfferWithdrawn"]) == (offer_id,)
    assert not market.getOffer(offer_id)["active"]
    assert market.stakeOf(provider)["listedGpus"] == 0


def test_withdrawOffer_refuses_new_rentals(market, stablecoin, provider, renter, offer_id):
    market.withdrawOffer(offer_id, {"from": provider})
    with reverts_with("OfferBook_OfferInactive(uint256)", offer_id):
        open_rental(market, stablecoin, renter, offer_id, BUDGET, version=0)


def test_withdrawOffer_running_rental_still_settles(market, oracle, provider, relayer, rental_id, offer_id):
    market.withdrawOffer(offer_id, {"from": provider})
    oracle.settle(rental_id, 1, 60, relayer)
    assert market.getRental(rental_id)["sequence"] == 1


def test_RevertWhen_withdrawOffer_unknown(market, provider):
    with reverts_with("OfferBook_UnknownOffer(uint256)", 5):
        market.withdrawOffer(5, {"from": provider})


def test_RevertWhen_withdrawOffer_by_another_account(market, stranger, offer_id):
    with reverts_with("OfferBook_NotProvider(uint256,address)", offer_id, stranger.address):
        market.withdrawOffer(offer_id, {"from": stranger})


def test_RevertWhen_withdrawOffer_twice(market, provider, offer_id):
    market.withdrawOffer(offer_id, {"from": provider})
    with reverts_with("OfferBook_OfferInactive(uint256)", offer_id):
        market.withdrawOffer(offer_id, {"from": provider})


def test_getOffer_unknown_is_empty(market):
    assert market.getOffer(42)["provider"] == ZERO_ADDRESS
    assert market.getOffer(42)["active"] is False
