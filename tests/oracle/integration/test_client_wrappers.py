"""Every MarketClient wrapper a provider, renter or operator uses, once, on a real anvil."""

from __future__ import annotations

import pytest

from oracle.chain.anvil import Anvil
from oracle.chain.errors import TransactionRevertedError

from .conftest import GOVERNANCE, deploy, open_active_rental

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chain():
    with Anvil() as anvil:  # this module moves the chain's clock; keep it to itself
        yield anvil


@pytest.fixture(scope="module")
def deployed(chain):
    return deploy(chain)


def test_offer_update_and_withdraw(deployed):
    rental = open_active_rental(deployed)
    provider = rental.provider
    offer = provider.get_offer(rental.offer_id)
    assert offer["active"] and provider.offer_count() >= rental.offer_id
    terms = {
        "gpu_model": offer["gpuModel"], "gpu_count": 1, "memory_mib": offer["memoryMib"],
        "payment_token": offer["paymentToken"], "price_per_gpu_hour": 7_200_000, "price_per_kwh": 0,
        "region": offer["region"], "grid_intensity_g_per_kwh": 30, "max_duration_seconds": 3_600,
        "min_uptime_bps": 9_500, "agent": offer["agent"],
    }
    provider.update_offer(rental.offer_id, terms)
    updated = provider.get_offer(rental.offer_id)
    assert updated["pricePerGpuHour"] == 7_200_000 and updated["version"] == offer["version"] + 1
    # a running rental keeps the price it was opened at
    assert provider.get_rental(rental.rental_id)["pricePerGpuHour"] == 3_600_000
    provider.withdraw_offer(rental.offer_id)
    assert not provider.get_offer(rental.offer_id)["active"]
    with pytest.raises(TransactionRevertedError) as info:
        rental.renter.open_rental(rental.offer_id, gpu_count=1, budget=1_000_000)
    assert info.value.error_name == "OfferBook_OfferInactive"


def test_top_up_cancel_and_refund(deployed):
    rental = open_active_rental(deployed)
    renter = rental.renter
    renter.top_up(rental.rental_id, 5_000_000)
    assert renter.get_rental(rental.rental_id)["budget"] == rental.budget + 5_000_000

    # a second rental, opened and cancelled before the provider starts it
    rental_id, _ = renter.open_rental(rental.offer_id, gpu_count=1, budget=2_000_000)
    assert renter.get_rental(rental_id)["statusName"] == "Open"
    before = renter.withdrawable(renter.account, deployed.token)
    cancelled = renter.cancel_rental(rental_id)
    assert cancelled.events["RentalCancelled"][0]["refund"] == 2_000_000
    assert renter.get_rental(rental_id)["statusName"] == "Cancelled"
    refund = renter.withdrawable(renter.account, deployed.token) - before
    if refund:  # refunds go through the pull ledger
        assert refund == 2_000_000
        renter.withdraw(deployed.token)


def test_withdraw_to_pays_an_address_the_payee_names(deployed):
    rental = open_active_rental(deployed)
    renter = rental.renter
    rental_id, _ = renter.open_rental(rental.offer_id, gpu_count=1, budget=3_000_000)
    renter.cancel_rental(rental_id)
    owed = renter.withdrawable(renter.account, deployed.token)
    payee = deployed.client(GOVERNANCE).account
    before = renter.balance_of(deployed.token, payee)
    result = renter.withdraw_to(deployed.token, payee)
    assert int(result.events["Withdrawn"][0]["amount"]) == owed > 0
    assert result.events["Withdrawn"][0]["account"] == renter.account
    assert renter.withdrawable(renter.account, deployed.token) == 0
    assert renter.balance_of(deployed.token, payee) - before == owed


def test_silent_rental_is_closed_after_the_timeout_and_reputation_counts_it(deployed):
    rental = open_active_rental(deployed)
    anyone = deployed.client(GOVERNANCE)
    with pytest.raises(TransactionRevertedError) as info:
        anyone.close_silent_rental(rental.rental_id)
    assert info.value.error_name == "RentalEscrow_TooEarly"
    deployed.chain.increase_time(anyone.params()["silenceTimeout"] + 1)
    deployed.chain.mine(1)
    anyone.close_silent_rental(rental.rental_id)
    assert anyone.get_rental(rental.rental_id)["endReasonName"] == "Silence"
    with pytest.raises(TransactionRevertedError) as info:
        anyone.finalize_rental(rental.rental_id)  # the final report may still settle within the grace
    assert info.value.error_name == "RentalEscrow_TooEarly"
    deployed.chain.increase_time(anyone.params()["settlementGrace"] + 1)
    deployed.chain.mine(1)
    anyone.finalize_rental(rental.rental_id)
    reputation = anyone.reputation_of(rental.provider.account)
    assert reputation["abandonedRentals"] >= 1
    assert isinstance(anyone.reputation_score(rental.provider.account), int)


def test_unstake_after_unbonding(deployed):
    provider = open_active_rental(deployed).provider
    provider.stake(deployed.token, provider.min_stake_per_gpu(deployed.token))
    stake = provider.stake_of(provider.account)
    spare = int(stake["active"]) - provider.required_stake(provider.account, int(stake["listedGpus"]))
    assert spare > 1
    half = spare // 2
    provider.request_unstake(half)
    with pytest.raises(TransactionRevertedError) as info:
        provider.complete_unstake()
    assert info.value.error_name == "ProviderStaking_NotUnbonded"
    deployed.chain.increase_time(provider.params()["unbondingDelay"] + 1)
    deployed.chain.mine(1)
    before = provider.balance_of(deployed.token)
    provider.complete_unstake()
    assert provider.balance_of(deployed.token) - before == half
    # the rest to an address the provider names (completeUnstakeTo)
    provider.request_unstake(spare - half)
    deployed.chain.increase_time(provider.params()["unbondingDelay"] + 1)
    deployed.chain.mine(1)
    payee = deployed.client(GOVERNANCE).account
    payee_before = provider.balance_of(deployed.token, payee)
    result = provider.complete_unstake_to(payee)
    assert int(result.events["Unstaked"][0]["amount"]) == spare - half
    assert provider.balance_of(deployed.token, payee) - payee_before == spare - half


def test_governance_wrappers(deployed):
    gov = deployed.client(GOVERNANCE)
    signer_set = gov.signer_set()
    assert signer_set.threshold == 2 and len(signer_set.signers) == 3
    assert all(gov.is_signer(s) for s in signer_set.signers)
    gov.set_signer_set(list(reversed(signer_set.signers)), 3)  # sorted by the client
    assert gov.signer_set().version == signer_set.version + 1 and gov.signer_set().threshold == 3
    params = gov.params()
    gov.set_params({**params, "protocolFeeBps": 250})
    assert gov.params()["protocolFeeBps"] == 250
    gov.set_payment_token(deployed.token, True)
    assert gov.is_payment_token(deployed.token)
    gov.set_stake_token(deployed.token, gov.min_stake_per_gpu(deployed.token))
    with pytest.raises(TransactionRevertedError) as info:
        deployed.client(2).set_params(params)  # the renter holds no governance role
    assert info.value.error_name == "AccessControlUnauthorizedAccount"
