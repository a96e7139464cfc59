"""Every timeout, at its exact boundary second (next block timestamp pinned with
evm_setNextBlockTimestamp): the last second something is allowed and the first second it is
not, so that between two parties' exits there is neither a gap nor an overlap."""

import pytest
from brownie import chain, web3

from conftest import BUDGET, MIN_STAKE_PER_GPU, OFFER_GPUS, PARAMS, open_rental
from market_testkit import reverts_with

OPEN, ACTIVE, ENDED = 1, 2, 3


def at(timestamp):
    """The next transaction is mined in a block with exactly this timestamp."""
    web3.provider.make_request("evm_setNextBlockTimestamp", [int(timestamp)])


@pytest.fixture
def opened(market, stablecoin, renter, offer_id):
    rid = open_rental(market, stablecoin, renter, offer_id, BUDGET)
    return rid, market.getRental(rid)["startDeadline"]


def test_startRental_allowed_at_start_deadline(market, provider, opened):
    rid, deadline = opened
    at(deadline)
    market.startRental(rid, {"from": provider})
    assert market.getRental(rid)["status"] == ACTIVE


def test_RevertWhen_cancelRental_by_stranger_at_start_deadline(market, stranger, opened):
    rid, deadline = opened
    at(deadline)
    with reverts_with("RentalEscrow_Unauthorized(uint256,address)", rid, stranger.address):
        market.cancelRental(rid, {"from": stranger})


def test_RevertWhen_startRental_one_second_after_deadline(market, provider, opened):
    rid, deadline = opened
    at(deadline + 1)
    with reverts_with("RentalEscrow_StartDeadlinePassed(uint256,uint256)", rid, deadline):
        market.startRental(rid, {"from": provider})


def test_cancelRental_by_stranger_one_second_after_deadline(market, stranger, opened):
    rid, deadline = opened
    at(deadline + 1)
    market.cancelRental(rid, {"from": stranger})


def test_RevertWhen_closeSilentRental_at_silence_timeout(market, stranger, rental_id):
    until = market.getRental(rental_id)["lastSettledAt"] + PARAMS["silenceTimeout"]
    at(until)
    with reverts_with("RentalEscrow_TooEarly(uint256,uint256)", rental_id, until):
        market.closeSilentRental(rental_id, {"from": stranger})


def test_closeSilentRental_one_second_after_silence_timeout(market, stranger, rental_id):
    until = market.getRental(rental_id)["lastSettledAt"] + PARAMS["silenceTimeout"]
    at(until + 1)
    market.closeSilentRental(rental_id, {"from": stranger})


def test_settle_still_possible_at_silence_timeout(market, oracle, relayer, rental_id):
    until = market.getRental(rental_id)["lastSettledAt"] + PARAMS["silenceTimeout"]
    at(until)
    oracle.settle(rental_id, 1, 10, relayer, periodEnd=until)


def test_RevertWhen_endRental_by_stranger_one_second_before_max_duration(market, stranger, rental_id):
    r = market.getRental(rental_id)
    at(r["startedAt"] + r["maxDurationSeconds"] - 1)
    with reverts_with("RentalEscrow_Unauthorized(uint256,address)", rental_id, stranger.address):
        market.endRental(rental_id, {"from": stranger})


def test_endRental_by_stranger_at_max_duration(market, stranger, rental_id):
    r = market.getRental(rental_id)
    at(r["startedAt"] + r["maxDurationSeconds"])
    market.endRental(rental_id, {"from": stranger})
    assert market.getRental(rental_id)["endReason"] == 4


@pytest.fixture
def ended(market, renter, rental_id):
    chain.sleep(60)  # the reports below attest 10 GPU-seconds: within what the rental had
    tx = market.endRental(rental_id, {"from": renter})
    return rental_id, tx.timestamp


def test_RevertWhen_finalizeRental_by_stranger_one_second_before_grace_ends(market, stranger, ended):
    rid, ended_at = ended
    until = ended_at + PARAMS["settlementGrace"]
    at(until - 1)
    with reverts_with("RentalEscrow_TooEarly(uint256,uint256)", rid, until):
        market.finalizeRental(rid, {"from": stranger})


def test_finalizeRental_by_stranger_when_grace_ends(market, stranger, ended):
    rid, ended_at = ended
    at(ended_at + PARAMS["settlementGrace"])
    market.finalizeRental(rid, {"from": stranger})


def test_settle_ended_rental_at_last_second_of_grace(market, oracle, relayer, ended):
    rid, ended_at = ended
    at(ended_at + PARAMS["settlementGrace"])
    oracle.settle(rid, 1, 10, relayer, periodEnd=ended_at, claim=False)


def test_RevertWhen_settle_ended_rental_one_second_after_grace(market, oracle, relayer, ended):
    rid, ended_at = ended
    at(ended_at + PARAMS["settlementGrace"] + 1)
    with reverts_with("UsageSettlement_NotSettleable(uint256,uint8)", rid, ENDED):
        oracle.settle(rid, 1, 10, relayer, periodEnd=ended_at)


def test_settle_and_finalize_overlap_only_in_the_last_grace_second(market, oracle, stranger, relayer, ended):
    """At endedAt + grace both the final settlement and anyone's finalization are allowed: the
    provider's last chance and the renter's exit touch, with no second where neither works."""
    rid, ended_at = ended
    at(ended_at + PARAMS["settlementGrace"])
    oracle.settle(rid, 1, 10, relayer, periodEnd=ended_at, claim=False)
    at(ended_at + PARAMS["settlementGrace"] + 1)
    market.finalizeRental(rid, {"from": stranger})


@pytest.fixture
def unbonding(market, provider, offer_id):
    market.withdrawOffer(offer_id, {"from": provider})
    tx = market.requestUnstake(MIN_STAKE_PER_GPU * OFFER_GPUS, {"from": provider})
    return tx.timestamp + PARAMS["unbondingDelay"]


def test_RevertWhen_completeUnstake_one_second_before_release(market, provider, unbonding):
    at(unbonding - 1)
    with reverts_with("ProviderStaking_NotUnbonded(uint256,uint256)", MIN_STAKE_PER_GPU * OFFER_GPUS, unbonding):
        market.completeUnstake({"from": provider})


def test_completeUnstake_at_release(market, provider, unbonding):
    at(unbonding)
    market.completeUnstake({"from": provider})


def test_slash_reaches_an_ended_rentals_collateral_until_the_last_second_of_its_grace(market, oracle, provider, relayer, ended):
    """Faults still slash an Ended rental during its grace (the provider cannot escape by ending),
    up to and including endedAt + settlementGrace, and not one second later."""
    rid, ended_at = ended
    at(ended_at + PARAMS["settlementGrace"])
    oracle.slash(rid, relayer, fault_id=0, kind=1, observedAt=ended_at)
    assert market.getRental(rid)["slashed"] == MIN_STAKE_PER_GPU * PARAMS["slashBps"] // 10_000
    at(ended_at + PARAMS["settlementGrace"] + 1)
    with reverts_with("ProviderStaking_RentalNotSlashable(uint256,uint8)", rid, 3):
        oracle.slash(rid, relayer, fault_id=1, kind=2, observedAt=ended_at)