"""IRentalEscrow: openRental, startRental, topUp, cancelRental, endRental, closeSilentRental,
finalizeRental, withdraw and the views, with every revert path; money checked by balances."""

import pytest
from brownie import ZERO_ADDRESS, chain

from conftest import (
    finalize_after_grace,
    BUDGET,
    MIN_STAKE_PER_GPU,
    OFFER_GPUS,
    PARAMS,
    PRICE_PER_GPU_HOUR,
    PRICE_PER_KWH,
    UNIT,
    fee_of,
    offer_terms,
    open_rental,
)
from market_testkit import event_args, plain, reverts_with

OPEN, ACTIVE, ENDED, CANCELLED, FINALIZED = 1, 2, 3, 4, 5
BY_RENTER, BY_PROVIDER, BUDGET_EXHAUSTED, MAX_DURATION, SILENCE = 1, 2, 3, 4, 5
MAX_UINT96 = 2**96 - 1
FEE_BPS = PARAMS["protocolFeeBps"]


@pytest.fixture
def open_id(market, stablecoin, renter, offer_id):
    """An Open (not started) one-GPU rental."""
    return open_rental(market, stablecoin, renter, offer_id, BUDGET)


# ------------------------------------------------------------------ openRental


def test_openRental_escrows_budget_snapshots_terms_and_emits(market, stablecoin, renter, provider, offer_id, solvent):
    before = stablecoin.balanceOf(renter)
    stablecoin.approve(market, BUDGET, {"from": renter})
    tx = market.openRental(offer_id, 0, 2, BUDGET, b"\0" * 32, {"from": renter})
    rid = tx.events["RentalOpened"]["rentalId"]
    deadline = tx.timestamp + PARAMS["startTimeout"]
    assert rid == 1 == market.rentalCount()
    assert event_args(tx.events["RentalOpened"]) == plain((rid, offer_id, renter, provider, 2, BUDGET, deadline))
    assert stablecoin.balanceOf(renter) == before - BUDGET
    r = market.getRental(rid)
    assert r["status"] == OPEN
    assert (r["renter"], r["provider"], r["gpuCount"], r["budget"], r["paid"]) == (renter, provider, 2, BUDGET, 0)
    assert (r["pricePerGpuHour"], r["pricePerKwh"], r["feeBps"]) == (PRICE_PER_GPU_HOUR, PRICE_PER_KWH, FEE_BPS)
    assert (r["startDeadline"], r["maxDurationSeconds"]) == (deadline, 7 * 24 * 3_600)
    solvent()


def test_RevertWhen_openRental_offer_unknown(market, stablecoin, renter, offer_id):
    with reverts_with("OfferBook_UnknownOffer(uint256)", 7):
        open_rental(market, stablecoin, renter, 7, BUDGET, version=0)


def test_RevertWhen_openRental_offer_withdrawn(market, stablecoin, renter, provider, offer_id):
    market.withdrawOffer(offer_id, {"from": provider})
    with reverts_with("OfferBook_OfferInactive(uint256)", offer_id):
        open_rental(market, stablecoin, renter, offer_id, BUDGET, version=0)


def test_RevertWhen_openRental_offer_updated_since_renter_looked(market, stablecoin, renter, provider, agent, offer_id):
    market.updateOffer(offer_id, offer_terms(stablecoin, agent, pricePerGpuHour=10 * PRICE_PER_GPU_HOUR), {"from": provider})
    with reverts_with("RentalEscrow_OfferVersionMismatch(uint256,uint32,uint32)", offer_id, 0, 1):
        open_rental(market, stablecoin, renter, offer_id, BUDGET, version=0)


def test_RevertWhen_openRental_payment_token_disallowed_after_listing(market, gov, stablecoin, renter, offer_id):
    market.setPaymentToken(stablecoin, False, {"from": gov})
    with reverts_with("OfferBook_PaymentTokenNotAllowed(address)", stablecoin.address):
        open_rental(market, stablecoin, renter, offer_id, BUDGET)


@pytest.mark.parametrize("gpus", [0, OFFER_GPUS + 1])
def test_RevertWhen_openRental_gpu_count_invalid(market, stablecoin, renter, offer_id, gpus):
    with reverts_with("RentalEscrow_InvalidGpuCount(uint16,uint16)", gpus, OFFER_GPUS):
        open_rental(market, stablecoin, renter, offer_id, BUDGET, gpus=gpus)


@pytest.mark.parametrize("budget", [0, MAX_UINT96 + 1])
def test_RevertWhen_openRental_budget_invalid(market, stablecoin, renter, offer_id, budget):
    with reverts_with("RentalEscrow_InvalidAmount(uint256)", budget):
        open_rental(market, stablecoin, renter, offer_id, budget)


def test_RevertWhen_openRental_provider_stake_slashed_below_requirement(market, oracle, stablecoin, renter, provider, relayer, rental_id, offer_id):
    oracle.slash(rental_id, relayer)
    active = MIN_STAKE_PER_GPU * OFFER_GPUS - MIN_STAKE_PER_GPU * PARAMS["slashBps"] // 10_000
    with reverts_with(
        "ProviderStaking_InsufficientStake(address,uint256,uint256)", provider.address, active, MIN_STAKE_PER_GPU * OFFER_GPUS
    ):
        open_rental(market, stablecoin, renter, offer_id, BUDGET)


def test_RevertWhen_openRental_allowance_too_small(market, stablecoin, renter, offer_id):
    stablecoin.approve(market, BUDGET - 1, {"from": renter})
    with reverts_with("ERC20InsufficientAllowance(address,uint256,uint256)", market.address, BUDGET - 1, BUDGET):
        market.openRental(offer_id, 0, 1, BUDGET, b"\0" * 32, {"from": renter})


def _offer_in(market, gov, token, provider, agent):
    market.setPaymentToken(token, True, {"from": gov})
    tx = market.createOffer(offer_terms(token, agent, gpuCount=1), {"from": provider})
    return tx.events["OfferCreated"]["offerId"]


def test_RevertWhen_openRental_payment_token_takes_a_transfer_fee(
    FeeOnTransferToken, market, gov, deployer, renter, provider, agent, offer_id, stablecoin
):
    """Adversarial: a fee-on-transfer payment token is refused at deposit."""
    fot = FeeOnTransferToken.deploy("Fee", "FEE", 6, 50, {"from": deployer})  # 0.5 %
    fot.mint(renter, BUDGET, {"from": deployer})
    market.withdrawOffer(offer_id, {"from": provider})  # free stake for one more GPU listing
    oid = _offer_in(market, gov, fot, provider, agent)
    with reverts_with("RentalEscrow_TransferShortfall(address,uint256,uint256)", fot.address, BUDGET, BUDGET - BUDGET // 200):
        open_rental(market, fot, renter, oid, BUDGET)
    assert fot.balanceOf(market) == 0 and market.rentalCount() == 0


def test_RevertWhen_openRental_token_returns_false(FalseReturnToken, market, gov, deployer, renter, provider, agent, offer_id):
    """A token that returns false instead of reverting is not credited (SafeERC20)."""
    bad = FalseReturnToken.deploy("False", "FLS", 6, {"from": deployer})
    market.withdrawOffer(offer_id, {"from": provider})
    oid = _offer_in(market, gov, bad, provider, agent)
    bad.approve(market, BUDGET, {"from": renter})  # approved, but the renter holds nothing
    with reverts_with("SafeERC20FailedOperation(address)", bad.address):
        market.openRental(oid, 0, 1, BUDGET, b"\0" * 32, {"from": renter})


# ------------------------------------------------------------------ startRental


def test_startRental_activates_and_emits(market, provider, open_id):
    tx = market.startRental(open_id, {"from": provider})
    assert event_args(tx.events["RentalStarted"]) == (open_id, tx.timestamp)
    r = market.getRental(open_id)
    assert (r["status"], r["startedAt"], r["lastSettledAt"]) == (ACTIVE, tx.timestamp, tx.timestamp)


def test_RevertWhen_startRental_by_renter(market, renter, open_id):
    with reverts_with("RentalEscrow_Unauthorized(uint256,address)", open_id, renter.address):
        market.startRental(open_id, {"from": renter})


def test_RevertWhen_startRental_after_deadline(market, provider, open_id):
    deadline = market.getRental(open_id)["startDeadline"]
    chain.sleep(PARAMS["startTimeout"] + 1)
    with reverts_with("RentalEscrow_StartDeadlinePassed(uint256,uint256)", open_id, deadline):
        market.startRental(open_id, {"from": provider})


def test_RevertWhen_startRental_twice(market, provider, rental_id):
    with reverts_with("RentalEscrow_WrongStatus(uint256,uint8)", rental_id, ACTIVE):
        market.startRental(rental_id, {"from": provider})


def test_RevertWhen_startRental_unknown(market, provider):
    with reverts_with("RentalEscrow_UnknownRental(uint256)", 3):
        market.startRental(3, {"from": provider})


def test_startRental_locks_the_collateral_until_finalization(market, provider, renter, open_id):
    before = market.stakeOf(provider)["locked"]
    market.startRental(open_id, {"from": provider})
    collateral = MIN_STAKE_PER_GPU * market.getRental(open_id)["gpuCount"]
    assert market.getRental(open_id)["collateral"] == collateral
    assert market.stakeOf(provider)["locked"] == before + collateral
    market.endRental(open_id, {"from": renter})
    finalize_after_grace(market, open_id, renter)
    assert market.stakeOf(provider)["locked"] == before


def test_RevertWhen_startRental_offer_withdrawn(market, provider, open_id, offer_id):
    market.withdrawOffer(offer_id, {"from": provider})
    with reverts_with("OfferBook_OfferInactive(uint256)", offer_id):
        market.startRental(open_id, {"from": provider})


# ------------------------------------------------------------------ topUp


@pytest.mark.parametrize("started", [False, True])
def test_topUp_by_anyone_grows_budget_and_emits(market, stablecoin, provider, stranger, open_id, started, solvent):
    if started:
        market.startRental(open_id, {"from": provider})
    stablecoin.mint(stranger, UNIT, {"from": stranger})
    stablecoin.approve(market, UNIT, {"from": stranger})
    tx = market.topUp(open_id, UNIT, {"from": stranger})
    assert event_args(tx.events["RentalToppedUp"]) == plain((open_id, stranger, UNIT, BUDGET + UNIT))
    assert market.getRental(open_id)["budget"] == BUDGET + UNIT
    solvent()


def test_RevertWhen_topUp_zero(market, renter, open_id):
    with reverts_with("RentalEscrow_InvalidAmount(uint256)", 0):
        market.topUp(open_id, 0, {"from": renter})


def test_RevertWhen_topUp_overflows_budget(market, renter, open_id):
    amount = MAX_UINT96 - BUDGET + 1
    with reverts_with("RentalEscrow_InvalidAmount(uint256)", amount):
        market.topUp(open_id, amount, {"from": renter})


def test_RevertWhen_topUp_ended_rental(market, renter, rental_id):
    market.endRental(rental_id, {"from": renter})
    with reverts_with("RentalEscrow_WrongStatus(uint256,uint8)", rental_id, ENDED):
        market.topUp(rental_id, 1, {"from": renter})


def test_RevertWhen_topUp_unknown(market, renter):
    with reverts_with("RentalEscrow_UnknownRental(uint256)", 9):
        market.topUp(9, 1, {"from": renter})


def test_RevertWhen_topUp_token_started_charging_a_fee(FeeOnTransferToken, market, gov, deployer, renter, provider, agent, offer_id):
    """Adversarial: a token that switches a transfer fee on after allowlisting is refused at top-up."""
    fot = FeeOnTransferToken.deploy("Fee", "FEE", 6, 0, {"from": deployer})
    fot.mint(renter, 2 * BUDGET, {"from": deployer})
    market.withdrawOffer(offer_id, {"from": provider})
    oid = _offer_in(market, gov, fot, provider, agent)
    rid = open_rental(market, fot, renter, oid, BUDGET)
    fot.setFeeBps(100, {"from": deployer})
    fot.approve(market, BUDGET, {"from": renter})
    with reverts_with("RentalEscrow_TransferShortfall(address,uint256,uint256)", fot.address, BUDGET, BUDGET - BUDGET // 100):
        market.topUp(rid, BUDGET, {"from": renter})
    assert market.getRental(rid)["budget"] == BUDGET
    assert fot.balanceOf(market) == BUDGET


# ------------------------------------------------------------------ cancelRental


@pytest.mark.parametrize("who", ["renter", "provider"])
def test_cancelRental_by_either_side_refunds_whole_budget(market, stablecoin, renter, provider, open_id, who, solvent):
    by = {"renter": renter, "provider": provider}[who]
    tx = market.cancelRental(open_id, {"from": by})
    assert event_args(tx.events["RentalCancelled"]) == plain((open_id, by, BUDGET))
    assert market.getRental(open_id)["status"] == CANCELLED
    assert market.withdrawable(renter, stablecoin) == BUDGET
    solvent()


def test_cancelRental_by_anyone_after_start_deadline(market, stablecoin, renter, stranger, open_id):
    chain.sleep(PARAMS["startTimeout"] + 1)
    market.cancelRental(open_id, {"from": stranger})
    assert market.withdrawable(renter, stablecoin) == BUDGET
    assert market.withdrawable(stranger, stablecoin) == 0


def test_RevertWhen_cancelRental_by_stranger_before_deadline(market, stranger, open_id):
    with reverts_with("RentalEscrow_Unauthorized(uint256,address)", open_id, stranger.address):
        market.cancelRental(open_id, {"from": stranger})


def test_RevertWhen_cancelRental_started(market, renter, rental_id):
    with reverts_with("RentalEscrow_WrongStatus(uint256,uint8)", rental_id, ACTIVE):
        market.cancelRental(rental_id, {"from": renter})


def test_RevertWhen_cancelRental_twice(market, renter, open_id):
    market.cancelRental(open_id, {"from": renter})
    with reverts_with("RentalEscrow_WrongStatus(uint256,uint8)", open_id, CANCELLED):
        market.cancelRental(open_id, {"from": renter})


def test_RevertWhen_cancelRental_unknown(market, renter):
    with reverts_with("RentalEscrow_UnknownRental(uint256)", 4):
        market.cancelRental(4, {"from": renter})


# ------------------------------------------------------------------ endRental


@pytest.mark.parametrize("who,reason", [("renter", BY_RENTER), ("provider", BY_PROVIDER)])
def test_endRental_by_either_side(market, renter, provider, rental_id, who, reason):
    by = {"renter": renter, "provider": provider}[who]
    tx = market.endRental(rental_id, {"from": by})
    assert event_args(tx.events["RentalEnded"]) == plain((rental_id, reason, by, tx.timestamp))
    r = market.getRental(rental_id)
    assert (r["status"], r["endReason"], r["endedAt"]) == (ENDED, reason, tx.timestamp)


def test_endRental_by_anyone_after_max_duration(market, stranger, rental_id):
    chain.sleep(7 * 24 * 3_600)
    tx = market.endRental(rental_id, {"from": stranger})
    assert tx.events["RentalEnded"]["reason"] == MAX_DURATION


def test_RevertWhen_endRental_by_stranger_before_max_duration(market, stranger, rental_id):
    with reverts_with("RentalEscrow_Unauthorized(uint256,address)", rental_id, stranger.address):
        market.endRental(rental_id, {"from": stranger})


def test_RevertWhen_endRental_not_started(market, renter, open_id):
    with reverts_with("RentalEscrow_WrongStatus(uint256,uint8)", open_id, OPEN):
        market.endRental(open_id, {"from": renter})


def test_RevertWhen_endRental_unknown(market, renter):
    with reverts_with("RentalEscrow_UnknownRental(uint256)", 11):
        market.endRental(11, {"from": renter})


# ------------------------------------------------------------------ closeSilentRental


def test_closeSilentRental_after_silence_timeout(market, stranger, rental_id):
    chain.sleep(PARAMS["silenceTimeout"] + 1)
    tx = market.closeSilentRental(rental_id, {"from": stranger})
    assert tx.events["RentalEnded"]["reason"] == SILENCE
    assert market.getRental(rental_id)["endReason"] == SILENCE


def test_RevertWhen_closeSilentRental_too_early(market, stranger, rental_id):
    until = market.getRental(rental_id)["lastSettledAt"] + PARAMS["silenceTimeout"]
    with reverts_with("RentalEscrow_TooEarly(uint256,uint256)", rental_id, until):
        market.closeSilentRental(rental_id, {"from": stranger})


def test_RevertWhen_closeSilentRental_settlement_restarted_the_clock(market, oracle, stranger, relayer, rental_id):
    chain.sleep(PARAMS["silenceTimeout"] - 10)
    tx = oracle.settle(rental_id, 1, 100, relayer)
    chain.sleep(20)
    with reverts_with("RentalEscrow_TooEarly(uint256,uint256)", rental_id, tx.timestamp + PARAMS["silenceTimeout"]):
        market.closeSilentRental(rental_id, {"from": stranger})


def test_RevertWhen_closeSilentRental_not_active(market, stranger, open_id):
    with reverts_with("RentalEscrow_WrongStatus(uint256,uint8)", open_id, OPEN):
        market.closeSilentRental(open_id, {"from": stranger})


# ------------------------------------------------------------------ finalizeRental


def test_finalizeRental_refunds_renter_pays_treasury_fee_and_emits(
    market, oracle, stablecoin, renter, provider, treasury, relayer, rental_id, solvent
):
    seconds = 3_600
    oracle.settle(rental_id, 1, seconds, relayer)
    market.endRental(rental_id, {"from": renter})
    paid = seconds * PRICE_PER_GPU_HOUR // 3_600
    fee = fee_of(paid, FEE_BPS)
    tx = finalize_after_grace(market, rental_id, provider)
    assert event_args(tx.events["RentalFinalized"]) == (rental_id, paid, fee, BUDGET - paid, False)
    assert market.getRental(rental_id)["status"] == FINALIZED
    assert market.withdrawable(renter, stablecoin) == BUDGET - paid
    assert market.withdrawable(treasury, stablecoin) == fee
    assert market.withdrawable(provider, stablecoin) == paid - fee
    solvent()


def test_finalizeRental_by_anyone_after_settlement_grace(market, stablecoin, renter, stranger, rental_id):
    market.endRental(rental_id, {"from": renter})
    chain.sleep(PARAMS["settlementGrace"] + 1)
    finalize_after_grace(market, rental_id, stranger)
    assert market.withdrawable(renter, stablecoin) == BUDGET


def test_RevertWhen_finalizeRental_by_anyone_within_grace(market, renter, provider, rental_id):
    """Faults can still slash an Ended rental during its grace: nobody, not even the provider,
    finalizes (and releases the collateral) before it ends."""
    tx = market.endRental(rental_id, {"from": renter})
    for who in (renter, provider):
        with reverts_with("RentalEscrow_TooEarly(uint256,uint256)", rental_id, tx.timestamp + PARAMS["settlementGrace"]):
            market.finalizeRental(rental_id, {"from": who})


def test_RevertWhen_finalizeRental_active(market, provider, rental_id):
    with reverts_with("RentalEscrow_WrongStatus(uint256,uint8)", rental_id, ACTIVE):
        market.finalizeRental(rental_id, {"from": provider})


def test_RevertWhen_finalizeRental_twice(market, renter, provider, rental_id):
    market.endRental(rental_id, {"from": renter})
    finalize_after_grace(market, rental_id, provider)
    with reverts_with("RentalEscrow_WrongStatus(uint256,uint8)", rental_id, FINALIZED):
        market.finalizeRental(rental_id, {"from": provider})


def test_RevertWhen_finalizeRental_unknown(market, provider):
    with reverts_with("RentalEscrow_UnknownRental(uint256)", 2):
        market.finalizeRental(2, {"from": provider})


def test_no_transition_out_of_finalized(market, oracle, stablecoin, renter, provider, relayer, rental_id):
    market.endRental(rental_id, {"from": renter})
    finalize_after_grace(market, rental_id, provider)
    for fn, args, who in [
        (market.startRental, (rental_id,), provider),
        (market.cancelRental, (rental_id,), renter),
        (market.endRental, (rental_id,), renter),
        (market.closeSilentRental, (rental_id,), renter),
        (market.topUp, (rental_id, 1), renter),
    ]:
        with reverts_with("RentalEscrow_WrongStatus(uint256,uint8)", rental_id, FINALIZED):
            fn(*args, {"from": who})
    with reverts_with("UsageSettlement_NotSettleable(uint256,uint8)", rental_id, FINALIZED):
        oracle.settle(rental_id, 1, 1, relayer)


# ------------------------------------------------------------------ withdraw


def test_withdraw_pays_whole_balance_and_emits(market, stablecoin, renter, open_id, solvent):
    market.cancelRental(open_id, {"from": renter})
    before = stablecoin.balanceOf(renter)
    tx = market.withdraw(stablecoin, {"from": renter})
    assert tx.return_value in (None, BUDGET)
    assert event_args(tx.events["Withdrawn"]) == plain((renter, stablecoin, BUDGET))
    assert stablecoin.balanceOf(renter) == before + BUDGET
    assert market.withdrawable(renter, stablecoin) == 0
    solvent()


def test_RevertWhen_withdraw_nothing(market, stablecoin, stranger):
    with reverts_with("RentalEscrow_NothingToWithdraw(address,address)", stranger.address, stablecoin.address):
        market.withdraw(stablecoin, {"from": stranger})


def test_RevertWhen_withdraw_twice(market, stablecoin, renter, open_id):
    market.cancelRental(open_id, {"from": renter})
    market.withdraw(stablecoin, {"from": renter})
    with reverts_with("RentalEscrow_NothingToWithdraw(address,address)", renter.address, stablecoin.address):
        market.withdraw(stablecoin, {"from": renter})


def test_withdrawable_is_zero_for_unknown_accounts(market, stablecoin):
    assert market.withdrawable(ZERO_ADDRESS, stablecoin) == 0
    assert market.getRental(123)["status"] == 0


def test_no_transition_out_of_cancelled(market, oracle, stablecoin, renter, provider, relayer, open_id):
    market.cancelRental(open_id, {"from": renter})
    for fn, args, who in [
        (market.startRental, (open_id,), provider),
        (market.cancelRental, (open_id,), provider),
        (market.endRental, (open_id,), renter),
        (market.closeSilentRental, (open_id,), renter),
        (market.finalizeRental, (open_id,), provider),
        (market.topUp, (open_id, 1), renter),
    ]:
        with reverts_with("RentalEscrow_WrongStatus(uint256,uint8)", open_id, CANCELLED):
            fn(*args, {"from": who})
    with reverts_with("UsageSettlement_NotSettleable(uint256,uint8)", open_id, CANCELLED):
        oracle.settle(open_id, 1, 1, relayer)
    assert market.withdrawable(renter, stablecoin) == BUDGET
