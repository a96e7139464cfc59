"""IProviderStaking: stake, unbonding, completeUnstake and slash, with their revert paths and the
adversarial cases: fee-on-transfer stake, a reentrant token on unstake, slashing the same fault
twice, and unstake racing a slash."""

import pytest
from brownie import chain

from conftest import BUDGET, MIN_STAKE_PER_GPU, OFFER_GPUS, PARAMS, UNIT, offer_terms, open_rental, stake_for
from market_testkit import event_args, fault_report_digest, plain, reverts_with

SLASH = MIN_STAKE_PER_GPU * 1 * PARAMS["slashBps"] // 10_000  # one-GPU rental
RENTER_SHARE = SLASH * PARAMS["renterSlashShareBps"] // 10_000
TREASURY_SHARE = SLASH - RENTER_SHARE
MAX_UINT96 = 2**96 - 1


@pytest.fixture(scope="module")
def other_token(ReentrantToken, deployer, accounts):
    """A second plain ERC-20 (the reentrant token, never armed here)."""
    token = ReentrantToken.deploy("Other", "OTH", 6, {"from": deployer})
    for a in accounts[:8]:
        token.mint(a, 1_000_000 * UNIT, {"from": deployer})
    return token


# ------------------------------------------------------------------ stake


def test_stake_pulls_tokens_records_and_emits(market, stablecoin, provider2, solvent):
    before = stablecoin.balanceOf(provider2)
    stablecoin.approve(market, 3 * UNIT, {"from": provider2})
    tx = market.stake(stablecoin, 3 * UNIT, {"from": provider2})
    assert stablecoin.balanceOf(provider2) == before - 3 * UNIT
    st = market.stakeOf(provider2)
    assert (st["token"], st["active"], st["unbonding"], st["listedGpus"]) == (stablecoin, 3 * UNIT, 0, 0)
    assert event_args(tx.events["Staked"]) == plain((provider2, stablecoin, 3 * UNIT, 3 * UNIT,))
    solvent()


def test_stake_adds_to_active_stake(market, stablecoin, provider, offer_id):
    stablecoin.approve(market, UNIT, {"from": provider})
    tx = market.stake(stablecoin, UNIT, {"from": provider})
    total = MIN_STAKE_PER_GPU * OFFER_GPUS + UNIT
    assert market.stakeOf(provider)["active"] == total
    assert tx.events["Staked"]["activeStake"] == total


def test_RevertWhen_stake_token_not_allowed(market, other_token, provider2):
    other_token.approve(market, UNIT, {"from": provider2})
    with reverts_with("ProviderStaking_TokenNotAllowed(address)", other_token.address):
        market.stake(other_token, UNIT, {"from": provider2})


def test_RevertWhen_stake_in_second_token_while_staked(market, gov, other_token, provider, offer_id):
    market.setStakeToken(other_token, MIN_STAKE_PER_GPU, {"from": gov})
    other_token.approve(market, UNIT, {"from": provider})
    with reverts_with(
        "ProviderStaking_StakeTokenMismatch(address,address)", market.stakeOf(provider)["token"], other_token.address
    ):
        market.stake(other_token, UNIT, {"from": provider})


def test_RevertWhen_stake_amount_is_zero(market, stablecoin, provider2):
    with reverts_with("ProviderStaking_InvalidAmount(uint256)", 0):
        market.stake(stablecoin, 0, {"from": provider2})


def test_RevertWhen_stake_exceeds_uint96(market, stablecoin, provider2, deployer):
    stablecoin.mint(provider2, MAX_UINT96, {"from": deployer})
    stablecoin.approve(market, MAX_UINT96 + 1, {"from": provider2})
    with reverts_with("ProviderStaking_InvalidAmount(uint256)", MAX_UINT96 + 1):
        market.stake(stablecoin, MAX_UINT96 + 1, {"from": provider2})


def test_RevertWhen_stake_token_takes_a_transfer_fee(FeeOnTransferToken, market, gov, deployer, provider2):
    """Adversarial: a fee-on-transfer stake token is refused (the stake would be over-counted)."""
    fot = FeeOnTransferToken.deploy("Fee", "FEE", 6, 100, {"from": deployer})  # 1 %
    fot.mint(provider2, 1_000 * UNIT, {"from": deployer})
    market.setStakeToken(fot, MIN_STAKE_PER_GPU, {"from": gov})
    fot.approve(market, 1_000 * UNIT, {"from": provider2})
    with reverts_with("RentalEscrow_TransferShortfall(address,uint256,uint256)", fot.address, 1_000 * UNIT, 990 * UNIT):
        market.stake(fot, 1_000 * UNIT, {"from": provider2})
    assert market.stakeOf(provider2)["active"] == 0
    assert fot.balanceOf(market) == 0


def test_stake_may_switch_token_once_fully_unstaked(market, gov, stablecoin, other_token, provider2):
    stake_for(market, stablecoin, provider2, gpus=1)
    market.requestUnstake(MIN_STAKE_PER_GPU, {"from": provider2})
    chain.sleep(PARAMS["unbondingDelay"] + 1)
    market.completeUnstake({"from": provider2})
    market.setStakeToken(other_token, MIN_STAKE_PER_GPU, {"from": gov})
    other_token.approve(market, UNIT, {"from": provider2})
    market.stake(other_token, UNIT, {"from": provider2})
    assert market.stakeOf(provider2)["token"] == other_token


# ------------------------------------------------------------------ requestUnstake


def test_requestUnstake_moves_stake_to_unbonding_and_emits(market, stablecoin, provider, offer_id):
    stablecoin.approve(market, 5 * UNIT, {"from": provider})
    market.stake(stablecoin, 5 * UNIT, {"from": provider})
    tx = market.requestUnstake(5 * UNIT, {"from": provider})
    release = tx.timestamp + PARAMS["unbondingDelay"]
    st = market.stakeOf(provider)
    assert (st["active"], st["unbonding"], st["unbondingReleaseAt"]) == (MIN_STAKE_PER_GPU * OFFER_GPUS, 5 * UNIT, release)
    assert event_args(tx.events["UnstakeRequested"]) == plain((provider, 5 * UNIT, 5 * UNIT, release,))


def test_requestUnstake_restarts_timer_for_whole_unbonding_amount(market, stablecoin, provider2):
    stake_for(market, stablecoin, provider2, gpus=2)
    market.requestUnstake(UNIT, {"from": provider2})
    chain.sleep(1_000)
    tx = market.requestUnstake(UNIT, {"from": provider2})
    st = market.stakeOf(provider2)
    assert st["unbonding"] == 2 * UNIT
    assert st["unbondingReleaseAt"] == tx.timestamp + PARAMS["unbondingDelay"]


def test_RevertWhen_requestUnstake_amount_is_zero(market, provider):
    with reverts_with("ProviderStaking_InvalidAmount(uint256)", 0):
        market.requestUnstake(0, {"from": provider})


def test_RevertWhen_requestUnstake_exceeds_active(market, provider, offer_id):
    too_much = MIN_STAKE_PER_GPU * OFFER_GPUS + 1
    with reverts_with("ProviderStaking_InvalidAmount(uint256)", too_much):
        market.requestUnstake(too_much, {"from": provider})


def test_RevertWhen_requestUnstake_leaves_listed_gpus_uncovered(market, provider, offer_id):
    required = MIN_STAKE_PER_GPU * OFFER_GPUS
    with reverts_with("ProviderStaking_InsufficientStake(address,uint256,uint256)", provider.address, required - 1, required):
        market.requestUnstake(1, {"from": provider})


def test_requestUnstake_everything_after_withdrawing_offers(market, provider, offer_id):
    market.withdrawOffer(offer_id, {"from": provider})
    market.requestUnstake(MIN_STAKE_PER_GPU * OFFER_GPUS, {"from": provider})
    assert market.stakeOf(provider)["active"] == 0


# ------------------------------------------------------------------ completeUnstake


def test_completeUnstake_returns_unbonded_stake_after_delay(market, stablecoin, provider, offer_id, solvent):
    market.withdrawOffer(offer_id, {"from": provider})
    amount = MIN_STAKE_PER_GPU * OFFER_GPUS
    market.requestUnstake(amount, {"from": provider})
    chain.sleep(PARAMS["unbondingDelay"] + 1)
    before = stablecoin.balanceOf(provider)
    tx = market.completeUnstake({"from": provider})
    assert stablecoin.balanceOf(provider) == before + amount
    assert market.stakeOf(provider)["unbonding"] == 0
    assert event_args(tx.events["Unstaked"]) == plain((provider, stablecoin, amount,))
    solvent()


def test_RevertWhen_completeUnstake_with_nothing_unbonding(market, provider):
    with reverts_with("ProviderStaking_NotUnbonded(uint256,uint256)", 0, 0):
        market.completeUnstake({"from": provider})


def test_RevertWhen_completeUnstake_before_delay(market, stablecoin, provider):
    stablecoin.approve(market, UNIT, {"from": provider})
    market.stake(stablecoin, UNIT, {"from": provider})
    tx = market.requestUnstake(UNIT, {"from": provider})
    release = tx.timestamp + PARAMS["unbondingDelay"]
    chain.sleep(PARAMS["unbondingDelay"] - 100)
    with reverts_with("ProviderStaking_NotUnbonded(uint256,uint256)", UNIT, release):
        market.completeUnstake({"from": provider})


def test_completeUnstake_reentrant_token_cannot_withdraw_twice(
    ReentrantToken, RevertingReceiver, market, gov, deployer, solvent
):
    """Adversarial: the stake token calls back into the provider contract mid-transfer, which
    calls completeUnstake again; the stake is paid out exactly once."""
    token = ReentrantToken.deploy("Re", "RE", 6, {"from": deployer})
    market.setStakeToken(token, MIN_STAKE_PER_GPU, {"from": gov})
    prov = RevertingReceiver.deploy({"from": deployer})
    amount = 3 * MIN_STAKE_PER_GPU
    token.mint(prov, amount, {"from": deployer})
    prov.execute(token, token.approve.encode_input(market, amount), {"from": deployer})
    prov.execute(market, market.stake.encode_input(token, amount), {"from": deployer})
    prov.execute(market, market.requestUnstake.encode_input(amount), {"from": deployer})
    chain.sleep(PARAMS["unbondingDelay"] + 1)
    # Other money in the same token, which a second payout would steal.
    token.mint(deployer, amount, {"from": deployer})
    token.approve(market, amount, {"from": deployer})
    market.stake(token, amount, {"from": deployer})

    reenter = prov.execute.encode_input(market, market.completeUnstake.encode_input())
    token.arm(1, prov, reenter, False, {"from": deployer})  # on transfer (the payout)
    prov.execute(market, market.completeUnstake.encode_input(), {"from": deployer})

    assert token.callbackCount() == 1
    assert not token.lastCallbackSuccess()  # the re-entry was refused
    assert token.balanceOf(prov) == amount  # paid once
    assert token.balanceOf(market) == amount  # the other staker's money is intact
    assert market.stakeOf(deployer)["active"] == amount
    solvent(prov, token=token)


# ------------------------------------------------------------------ slash


def _end_and_finalize(market, renter, rid):
    market.endRental(rid, {"from": renter})
    until = int(market.getRental(rid)["endedAt"]) + int(market.rentalTerms(rid)["settlementGrace"])
    chain.sleep(until - chain.time() + 1)
    return market.finalizeRental(rid, {"from": renter})


def test_slash_takes_the_rentals_collateral_and_pays_out_at_finalization(
    market, oracle, stablecoin, provider, renter, treasury, relayer, rental_id, solvent
):
    before = market.stakeOf(provider)
    assert before["locked"] == MIN_STAKE_PER_GPU  # the one-GPU rental's collateral
    tx = oracle.slash(rental_id, relayer, fault_id=3, kind=2)
    after = market.stakeOf(provider)
    assert (after["active"], after["locked"]) == (before["active"] - SLASH, before["locked"] - SLASH)
    assert market.getRental(rental_id)["slashed"] == SLASH
    assert market.withdrawable(renter, stablecoin) == 0 and market.withdrawable(treasury, stablecoin) == 0
    assert market.isFaultSettled(rental_id, 3)
    assert event_args(tx.events["Slashed"]) == plain((provider, rental_id, 3, 2, stablecoin, SLASH))
    assert market.reputationOf(provider)["slashCount"] == 1
    assert market.reputationOf(provider)["slashedAmount"] == SLASH
    solvent()
    # The renter used 1,000 GPU-seconds (1 token): its share of the slash is capped by that.
    oracle.settle(rental_id, 1, 1_000, relayer)
    paid = int(market.getRental(rental_id)["paid"])
    tx = _end_and_finalize(market, renter, rental_id)
    share = min(RENTER_SHARE, paid)
    assert event_args(tx.events["SlashPaidOut"]) == plain((rental_id, stablecoin, share, SLASH - share))
    assert market.withdrawable(renter, stablecoin) == BUDGET - paid + share
    assert market.stakeOf(provider)["locked"] == 0
    solvent()


def test_slash_scales_with_rental_gpu_count(market, oracle, stablecoin, renter, provider, treasury, relayer, offer_id):
    rid = open_rental(market, stablecoin, renter, offer_id, BUDGET, gpus=3)
    market.startRental(rid, {"from": provider})
    tx = oracle.slash(rid, relayer)
    assert tx.events["Slashed"]["amount"] == 3 * SLASH


def test_slash_each_kind_once_per_window(market, oracle, provider, relayer, rental_id):
    before = market.stakeOf(provider)["active"]
    oracle.slash(rental_id, relayer, fault_id=0, kind=1)
    oracle.slash(rental_id, relayer, fault_id=1, kind=2)
    with reverts_with("ProviderStaking_SlashWindowUsed(uint256,uint8,uint256)", rental_id, 1, 0):
        oracle.slash(rental_id, relayer, fault_id=2, kind=1)
    chain.sleep(PARAMS["slashWindowSeconds"])
    chain.mine()
    oracle.slash(rental_id, relayer, fault_id=3, kind=1)  # the next window
    assert market.stakeOf(provider)["active"] == before - 3 * SLASH


def test_RevertWhen_slash_same_fault_twice(market, oracle, provider, renter, stablecoin, relayer, rental_id, solvent):
    """Adversarial: a fault report settles once, even resubmitted with fresh signatures."""
    oracle.slash(rental_id, relayer, fault_id=7, kind=1)
    stake_after_first = market.stakeOf(provider)["active"]
    with reverts_with("ProviderStaking_FaultAlreadySettled(uint256,uint32)", rental_id, 7):
        oracle.slash(rental_id, relayer, fault_id=7, kind=1)
    # the same fault id under another kind or evidence is still the same fault
    with reverts_with("ProviderStaking_FaultAlreadySettled(uint256,uint32)", rental_id, 7):
        oracle.slash(rental_id, relayer, fault_id=7, kind=3, evidenceHash=b"\x99" * 32)
    assert market.stakeOf(provider)["active"] == stake_after_first
    assert market.reputationOf(provider)["slashCount"] == 1
    solvent()


@pytest.mark.parametrize("kind", [0, 8, 255])
def test_RevertWhen_slash_fault_kind_unknown(market, oracle, relayer, rental_id, kind):
    with reverts_with("ProviderStaking_UnknownFaultKind(uint8)", kind):
        oracle.slash(rental_id, relayer, kind=kind)


def test_RevertWhen_slash_idle_power_busy_the_renters_workload(market, oracle, provider, relayer, rental_id):
    before = market.stakeOf(provider)["active"]
    with reverts_with("ProviderStaking_FaultNotSlashable(uint8)", 4):
        oracle.slash(rental_id, relayer, kind=4)
    assert market.stakeOf(provider)["active"] == before


def test_RevertWhen_slash_rental_not_started(market, oracle, stablecoin, renter, relayer, offer_id):
    rid = open_rental(market, stablecoin, renter, offer_id, BUDGET)
    with reverts_with("ProviderStaking_RentalNotSlashable(uint256,uint8)", rid, 1):
        oracle.slash(rid, relayer)


def test_RevertWhen_slash_rental_unknown(market, oracle, relayer):
    with reverts_with("ProviderStaking_RentalNotSlashable(uint256,uint8)", 999, 0):
        oracle.slash(999, relayer)


def test_RevertWhen_slash_quorum_too_small(market, oracle, relayer, rental_id):
    report = oracle.fault(rental_id)
    with reverts_with("OracleQuorum_NotEnoughSignatures(uint256,uint8)", 130, 3):
        market.slash(report.as_tuple(), oracle.sign_fault(report, keys=oracle.keys[:2]), {"from": relayer})


def test_RevertWhen_slash_signed_for_old_signer_set(market, oracle, gov, relayer, rental_id, spare_oracle_keys):
    from eth_account import Account

    report = oracle.fault(rental_id)
    signatures = oracle.sign_fault(report)
    market.setSignerSet([Account.from_key(k).address for k in spare_oracle_keys], 2, {"from": gov})
    chain.sleep(market.signerSetRotation()[0] + 1)  # past the previous set's overlap
    with reverts_with("OracleQuorum_WrongSignerSetVersion(uint32,uint32)", 1, 2):
        market.slash(report.as_tuple(), signatures, {"from": relayer})


def test_slash_is_capped_by_the_rentals_collateral(market, gov, oracle, treasury, provider, relayer, offer_id, stablecoin, renter):
    """The rental's slashBps is fixed at open: raise it before opening, then every kind slashes
    until the collateral is gone, and the next fault reverts instead of moving nothing."""
    from conftest import params_tuple

    market.setParams(params_tuple(treasury, slashBps=4_000), {"from": gov})
    rid = open_rental(market, stablecoin, renter, offer_id, BUDGET)
    market.startRental(rid, {"from": provider})
    before = market.stakeOf(provider)["active"]
    for kind in (1, 2, 3):
        oracle.slash(rid, relayer, fault_id=kind, kind=kind)
    assert market.getRental(rid)["slashed"] == MIN_STAKE_PER_GPU  # 40 % + 40 % + the last 20 %
    with reverts_with("ProviderStaking_NothingToSlash(uint256)", rid):
        oracle.slash(rid, relayer, fault_id=5, kind=5)
    assert market.stakeOf(provider)["active"] == before - MIN_STAKE_PER_GPU


def test_RevertWhen_unstake_reaches_the_collateral_of_a_running_rental(market, oracle, provider, relayer, rental_id, offer_id, solvent):
    """Adversarial, unstake racing a slash: the provider withdraws its offer and tries to move its
    whole stake into unbonding the moment it sees the fault; the rental's collateral stays."""
    market.withdrawOffer(offer_id, {"from": provider})
    total = MIN_STAKE_PER_GPU * OFFER_GPUS
    with reverts_with("ProviderStaking_InsufficientStake(address,uint256,uint256)", provider.address, 0, MIN_STAKE_PER_GPU):
        market.requestUnstake(total, {"from": provider})
    market.requestUnstake(total - MIN_STAKE_PER_GPU, {"from": provider})
    tx = oracle.slash(rental_id, relayer)
    assert tx.events["Slashed"]["amount"] == SLASH
    st = market.stakeOf(provider)
    assert (st["active"], st["locked"], st["unbonding"]) == (MIN_STAKE_PER_GPU - SLASH, MIN_STAKE_PER_GPU - SLASH, total - MIN_STAKE_PER_GPU)
    solvent()


def test_slash_is_callable_by_anyone(market, oracle, stranger, rental_id):
    oracle.slash(rental_id, stranger)
    assert market.isFaultSettled(rental_id, 0)


# ------------------------------------------------------------------ views


def test_requiredStake_is_min_per_gpu_times_gpus(market, provider, stranger):
    assert market.requiredStake(provider, 7) == 7 * MIN_STAKE_PER_GPU
    assert market.requiredStake(stranger, 7) == 0


def test_faultReportDigest_matches_eip712_spec(market, oracle, rental_id):
    from brownie import chain as ch

    report = oracle.fault(rental_id, 2, 4)
    assert market.faultReportDigest(report.as_tuple()) == "0x" + fault_report_digest(report, ch.id, market.address).hex()


def test_isFaultSettled_false_before_slash(market, rental_id):
    assert not market.isFaultSettled(rental_id, 0)


@pytest.mark.parametrize("renter_bps", [0, 10_000])
def test_slash_split_extremes(market, gov, oracle, stablecoin, renter, treasury, relayer, offer_id, provider, renter_bps, solvent):
    """The renter's share is the rental's renterSlashShareBps of what was slashed, capped by what
    the rental cost it; the treasury gets the rest."""
    from conftest import params_tuple

    market.setParams(params_tuple(treasury, renterSlashShareBps=renter_bps), {"from": gov})
    rid = open_rental(market, stablecoin, renter, offer_id, BUDGET)
    market.startRental(rid, {"from": provider})
    oracle.slash(rid, relayer)
    oracle.settle(rid, 1, 100_000, relayer)  # 100 tokens: the whole budget, more than the share
    paid = int(market.getRental(rid)["paid"])
    tx = _end_and_finalize(market, renter, rid) if market.getRental(rid)["status"] == 2 else None
    if tx is None:  # the budget ran out and ended it
        until = int(market.getRental(rid)["endedAt"]) + int(market.rentalTerms(rid)["settlementGrace"])
        chain.sleep(until - chain.time() + 1)
        tx = market.finalizeRental(rid, {"from": renter})
    share = min(SLASH * renter_bps // 10_000, paid)
    assert (tx.events["SlashPaidOut"]["renterShare"], tx.events["SlashPaidOut"]["treasuryShare"]) == (share, SLASH - share)
    assert market.withdrawable(renter, stablecoin) == BUDGET - paid + share
    solvent()


def test_RevertWhen_slash_bps_zero_would_move_nothing(market, gov, oracle, provider, treasury, relayer, offer_id, stablecoin, renter):
    from conftest import params_tuple

    market.setParams(params_tuple(treasury, slashBps=0), {"from": gov})
    rid = open_rental(market, stablecoin, renter, offer_id, BUDGET)
    market.startRental(rid, {"from": provider})
    with reverts_with("ProviderStaking_NothingToSlash(uint256)", rid):
        oracle.slash(rid, relayer)
    assert not market.isFaultSettled(rid, 0)
