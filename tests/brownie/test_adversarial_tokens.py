"""Adversarial token and receiver behaviour around the money paths: a reentrant token on settle,
top-up and withdraw (unstake: test_staking.py), a reentrant receiver on withdraw, and payees
whose withdrawal reverts (blocklisted, or a contract that refuses) not blocking anyone else.
Each scenario ends with the conservation check: token balance == escrow + stakes + owed."""

import pytest
from brownie import chain
from eth_utils import keccak

from conftest import finalize_after_grace, BUDGET, MIN_STAKE_PER_GPU, PARAMS, UNIT, cost, fee_of, offer_terms, open_rental, stake_for
from market_testkit import reverts_with

REENTRANCY = "0x" + keccak(text="ReentrancyGuardReentrantCall()")[:4].hex()
FEE_BPS = PARAMS["protocolFeeBps"]
TRANSFER, TRANSFER_FROM, BOTH = 1, 2, 3


def credit(paid):
    return paid - fee_of(paid, FEE_BPS)


@pytest.fixture(scope="module")
def free_provider(market, provider, offer_id):
    """The staked provider with its stablecoin offer withdrawn, so its stake covers new offers."""
    market.withdrawOffer(offer_id, {"from": provider})
    return provider


def _listed_offer(market, gov, token, provider, agent, gpus=1):
    if not market.isPaymentToken(token):
        market.setPaymentToken(token, True, {"from": gov})
    tx = market.createOffer(offer_terms(token, agent, gpuCount=gpus), {"from": provider})
    return tx.events["OfferCreated"]["offerId"]


def _contract_provider(RevertingReceiver, market, stablecoin, token, gov, deployer, agent):
    """A contract account that stakes (stablecoin), lists an offer in `token`, and is driven
    through `execute`."""
    prov = RevertingReceiver.deploy({"from": deployer})
    stablecoin.mint(prov, MIN_STAKE_PER_GPU, {"from": deployer})
    prov.execute(stablecoin, stablecoin.approve.encode_input(market, MIN_STAKE_PER_GPU), {"from": deployer})
    prov.execute(market, market.stake.encode_input(stablecoin, MIN_STAKE_PER_GPU), {"from": deployer})
    if not market.isPaymentToken(token):
        market.setPaymentToken(token, True, {"from": gov})
    tx = prov.execute(market, market.createOffer.encode_input(offer_terms(token, agent, gpuCount=1)), {"from": deployer})
    return prov, tx.events["OfferCreated"]["offerId"]


@pytest.fixture(scope="module")
def retoken(ReentrantToken, deployer, accounts):
    token = ReentrantToken.deploy("Reentrant USD", "rUSD", 6, {"from": deployer})
    for a in accounts[:8]:
        token.mint(a, 1_000_000 * UNIT, {"from": deployer})
    return token


# ------------------------------------------------------------------ reentrant token on settle


def test_settle_never_calls_the_payment_token(market, gov, oracle, retoken, free_provider, renter, agent, relayer, deployer, solvent):
    """Adversarial: settlement and claim only move ledger balances, so a reentrant token has no
    hook to fire: armed on every entry point, it is not called by settle, settleBatch or claim."""
    oid = _listed_offer(market, gov, retoken, free_provider, agent)
    rid = open_rental(market, retoken, renter, oid, BUDGET)
    market.startRental(rid, {"from": free_provider})
    report = oracle.usage(rid, 1, 100)
    retoken.arm(BOTH, market, market.settle.encode_input(report.as_tuple(), oracle.sign_usage(report)), True, {"from": deployer})
    oracle.settle(rid, 1, 100, relayer)
    reports = [oracle.usage(rid, 2, 200)]
    market.settleBatch([r.as_tuple() for r in reports], oracle.sign_batch(reports), {"from": relayer})
    market.claim([rid], {"from": relayer})
    assert retoken.callbackCount() == 0
    assert market.withdrawable(free_provider, retoken) == credit(cost(200))
    solvent(token=retoken)


def test_topUp_reentrant_token_cannot_settle_mid_deposit(market, gov, oracle, retoken, free_provider, renter, agent, relayer, deployer, solvent):
    """Adversarial: the payment token re-enters settle from inside the top-up's transferFrom
    (budget already raised, tokens in flight). The guard refuses; the report settles normally
    afterwards and pays exactly its cost."""
    oid = _listed_offer(market, gov, retoken, free_provider, agent)
    rid = open_rental(market, retoken, renter, oid, BUDGET)
    market.startRental(rid, {"from": free_provider})
    report = oracle.usage(rid, 1, 3_600)
    signatures = oracle.sign_usage(report)
    retoken.arm(TRANSFER_FROM, market, market.settle.encode_input(report.as_tuple(), signatures), False, {"from": deployer})
    retoken.approve(market, UNIT, {"from": renter})
    market.topUp(rid, UNIT, {"from": renter})
    assert retoken.callbackCount() == 1
    assert not retoken.lastCallbackSuccess()
    assert retoken.lastCallbackReturnData() == REENTRANCY
    assert market.getRental(rid)["sequence"] == 0
    market.settle(report.as_tuple(), signatures, {"from": relayer})
    market.claim([rid], {"from": relayer})
    assert market.withdrawable(free_provider, retoken) == credit(cost(3_600))
    solvent(token=retoken)


def test_openRental_reentrant_token_cannot_open_twice_with_one_deposit(market, gov, retoken, free_provider, renter, agent, deployer, solvent):
    oid = _listed_offer(market, gov, retoken, free_provider, agent)
    retoken.approve(market, 2 * BUDGET, {"from": renter})
    retoken.arm(TRANSFER_FROM, market, market.openRental.encode_input(oid, 0, 1, BUDGET, b"\0" * 32), False, {"from": deployer})
    market.openRental(oid, 0, 1, BUDGET, b"\0" * 32, {"from": renter})
    assert not retoken.lastCallbackSuccess()
    assert retoken.lastCallbackReturnData() == REENTRANCY
    assert market.rentalCount() == 1
    assert retoken.balanceOf(market) == BUDGET
    solvent(token=retoken)


# ------------------------------------------------------------------ reentrant token / receiver on withdraw


def test_withdraw_reentrant_token_pays_once(RevertingReceiver, market, gov, oracle, stablecoin, retoken, renter, agent, relayer, deployer, solvent):
    """Adversarial: the payment token calls back into the provider contract mid-payout, which
    calls withdraw again; the provider is paid its balance once and the renters' escrow in the
    same token is untouched."""
    prov, oid = _contract_provider(RevertingReceiver, market, stablecoin, retoken, gov, deployer, agent)
    rid = open_rental(market, retoken, renter, oid, BUDGET)
    prov.execute(market, market.startRental.encode_input(rid), {"from": deployer})
    oracle.settle(rid, 1, 7_200, relayer)
    owed = credit(cost(7_200))
    assert market.withdrawable(prov, retoken) == owed

    withdraw = market.withdraw.encode_input(retoken)
    retoken.arm(TRANSFER, prov, prov.execute.encode_input(market, withdraw), False, {"from": deployer})
    prov.execute(market, withdraw, {"from": deployer})

    assert retoken.callbackCount() == 1
    assert not retoken.lastCallbackSuccess()
    assert retoken.balanceOf(prov) == owed
    assert market.withdrawable(prov, retoken) == 0
    assert retoken.balanceOf(market) == BUDGET - owed
    solvent(prov, token=retoken)


def test_withdraw_reentrant_receiver_pays_once(HookToken, RevertingReceiver, market, gov, oracle, stablecoin, renter, agent, relayer, deployer, solvent):
    """Adversarial: a token with receiver hooks (ERC-777 style) lets the provider contract
    re-enter withdraw from its hook; refused, paid once."""
    hook = HookToken.deploy("Hook USD", "hUSD", 6, {"from": deployer})
    hook.mint(renter, 10 * BUDGET, {"from": deployer})
    prov, oid = _contract_provider(RevertingReceiver, market, stablecoin, hook, gov, deployer, agent)
    hook.setHooked(prov, True, {"from": deployer})
    rid = open_rental(market, hook, renter, oid, BUDGET)
    prov.execute(market, market.startRental.encode_input(rid), {"from": deployer})
    oracle.settle(rid, 1, 3_600, relayer)
    owed = credit(cost(3_600))
    withdraw = market.withdraw.encode_input(hook)
    prov.setReentry(market, withdraw, {"from": deployer})
    prov.execute(market, withdraw, {"from": deployer})
    assert prov.hookCalls() == 1
    assert not prov.lastReentrySuccess()
    assert prov.lastReentryReturnData() == REENTRANCY
    assert hook.balanceOf(prov) == owed
    assert hook.balanceOf(market) == BUDGET - owed
    solvent(prov, token=hook)


# ------------------------------------------------------------------ a payee that cannot receive


def test_withdraw_blocklisted_provider_does_not_block_anyone_else(
    BlocklistToken, market, gov, oracle, free_provider, provider2, renter, renter2, treasury, agent, relayer, deployer, stablecoin, solvent
):
    """Adversarial: the payment token blocks the provider's address. Its own withdrawal reverts;
    the renter's refund, the treasury's fee and another provider's earnings in the same token
    all still withdraw, and the blocked balance stays credited for later."""
    blk = BlocklistToken.deploy("Blocklist USD", "bUSD", 6, {"from": deployer})
    for a in (renter, renter2):
        blk.mint(a, 10 * BUDGET, {"from": deployer})
    oid = _listed_offer(market, gov, blk, free_provider, agent)
    stake_for(market, stablecoin, provider2, gpus=1)
    oid2 = _listed_offer(market, gov, blk, provider2, agent)
    r1 = open_rental(market, blk, renter, oid, BUDGET)
    r2 = open_rental(market, blk, renter2, oid2, BUDGET)
    market.startRental(r1, {"from": free_provider})
    market.startRental(r2, {"from": provider2})
    oracle.settle(r1, 1, 1_000, relayer)
    oracle.settle(r2, 1, 2_000, relayer)
    market.endRental(r1, {"from": renter})
    finalize_after_grace(market, r1, free_provider)

    blk.setBlocked(free_provider, True, {"from": deployer})
    with reverts_with("BlocklistToken_Blocked(address)", free_provider.address):
        market.withdraw(blk, {"from": free_provider})
    assert market.withdrawable(free_provider, blk) == credit(cost(1_000))

    for who, amount in [
        (renter, BUDGET - cost(1_000)),
        (treasury, fee_of(cost(1_000), FEE_BPS)),
        (provider2, credit(cost(2_000))),
    ]:
        before = blk.balanceOf(who)
        market.withdraw(blk, {"from": who})
        assert blk.balanceOf(who) - before == amount
    solvent(token=blk)

    blk.setBlocked(free_provider, False, {"from": deployer})
    market.withdraw(blk, {"from": free_provider})
    assert blk.balanceOf(free_provider) == credit(cost(1_000))
    solvent(token=blk)


def test_withdraw_refusing_provider_contract_does_not_block_anyone_else(
    HookToken, RevertingReceiver, market, gov, oracle, stablecoin, renter, treasury, agent, relayer, deployer, solvent
):
    """Adversarial: a provider contract whose receive hook reverts cannot withdraw; the renter's
    refund and the treasury's fee are unaffected (pull payments, nothing pushed in a loop)."""
    hook = HookToken.deploy("Hook USD", "hUSD", 6, {"from": deployer})
    hook.mint(renter, 10 * BUDGET, {"from": deployer})
    prov, oid = _contract_provider(RevertingReceiver, market, stablecoin, hook, gov, deployer, agent)
    hook.setHooked(prov, True, {"from": deployer})
    rid = open_rental(market, hook, renter, oid, BUDGET)
    prov.execute(market, market.startRental.encode_input(rid), {"from": deployer})
    oracle.settle(rid, 1, 3_600, relayer)
    prov.setRefuse(True, {"from": deployer})
    prov.execute(market, market.endRental.encode_input(rid), {"from": deployer})
    chain.sleep(PARAMS["settlementGrace"] + 1)
    prov.execute(market, market.finalizeRental.encode_input(rid), {"from": deployer})  # the provider's own finalization works

    owed = credit(cost(3_600))
    with reverts_with("RevertingReceiver_Refused(address,uint256)", market.address, owed):
        prov.execute(market, market.withdraw.encode_input(hook), {"from": deployer})
    market.withdraw(hook, {"from": renter})
    market.withdraw(hook, {"from": treasury})
    assert hook.balanceOf(treasury) == fee_of(cost(3_600), FEE_BPS)
    assert market.withdrawable(prov, hook) == owed
    assert hook.balanceOf(market) == owed
    solvent(prov, token=hook)


def test_blocklisted_renter_does_not_block_provider_payment(
    BlocklistToken, market, gov, oracle, free_provider, renter, treasury, agent, relayer, deployer, solvent
):
    """The other direction: a renter who cannot receive its refund does not stop the provider
    from being settled, finalized and paid."""
    blk = BlocklistToken.deploy("Blocklist USD", "bUSD", 6, {"from": deployer})
    blk.mint(renter, BUDGET, {"from": deployer})
    oid = _listed_offer(market, gov, blk, free_provider, agent)
    rid = open_rental(market, blk, renter, oid, BUDGET)
    market.startRental(rid, {"from": free_provider})
    blk.setBlocked(renter, True, {"from": deployer})
    oracle.settle(rid, 1, 500, relayer)
    market.endRental(rid, {"from": free_provider})
    finalize_after_grace(market, rid, free_provider)
    market.withdraw(blk, {"from": free_provider})
    market.withdraw(blk, {"from": treasury})
    assert blk.balanceOf(free_provider) == credit(cost(500))
    with reverts_with("BlocklistToken_Blocked(address)", renter.address):
        market.withdraw(blk, {"from": renter})
    assert market.withdrawable(renter, blk) == BUDGET - cost(500)
    solvent(token=blk)


# ------------------------------------------------------------------ a blocklisted payee names a recipient (issue 11)


def test_withdrawTo_blocklisted_provider_takes_its_balance_to_an_address_it_names(
    BlocklistToken, market, gov, oracle, free_provider, renter, stranger, agent, relayer, deployer, solvent
):
    """A payee the token blocklists (USDC-style) cannot receive its earnings, but withdrawTo pays
    them to an address it names; Withdrawn still names the payee's account."""
    blk = BlocklistToken.deploy("Blocklist USD", "bUSD", 6, {"from": deployer})
    blk.mint(renter, BUDGET, {"from": deployer})
    oid = _listed_offer(market, gov, blk, free_provider, agent)
    rid = open_rental(market, blk, renter, oid, BUDGET)
    market.startRental(rid, {"from": free_provider})
    oracle.settle(rid, 1, 1_000, relayer)
    market.endRental(rid, {"from": renter})
    finalize_after_grace(market, rid, free_provider)
    owed = credit(cost(1_000))

    blk.setBlocked(free_provider, True, {"from": deployer})
    with reverts_with("BlocklistToken_Blocked(address)", free_provider.address):
        market.withdraw(blk, {"from": free_provider})
    with reverts_with("RentalEscrow_InvalidRecipient(address)", "0x" + "00" * 20):
        market.withdrawTo(blk, "0x" + "00" * 20, {"from": free_provider})
    tx = market.withdrawTo(blk, stranger, {"from": free_provider})
    assert tx.return_value == owed
    assert tx.events["Withdrawn"]["account"] == free_provider
    assert tx.events["Withdrawn"]["amount"] == owed
    assert blk.balanceOf(stranger) == owed
    assert market.withdrawable(free_provider, blk) == 0
    solvent(token=blk)


def test_completeUnstakeTo_blocklisted_provider_unstakes_to_an_address_it_names(
    BlocklistToken, market, gov, provider2, stranger, deployer, solvent
):
    """A provider whose stake token blocklists it takes its unbonded stake out to an address it
    names; the plain completeUnstake still reverts for it."""
    blk = BlocklistToken.deploy("Blocklist USD", "bUSD", 6, {"from": deployer})
    market.setStakeToken(blk, MIN_STAKE_PER_GPU, {"from": gov})
    blk.mint(provider2, MIN_STAKE_PER_GPU, {"from": deployer})
    blk.approve(market, MIN_STAKE_PER_GPU, {"from": provider2})
    market.stake(blk, MIN_STAKE_PER_GPU, {"from": provider2})
    market.requestUnstake(MIN_STAKE_PER_GPU, {"from": provider2})
    chain.sleep(PARAMS["unbondingDelay"] + 1)
    chain.mine()
    blk.setBlocked(provider2, True, {"from": deployer})
    with reverts_with("BlocklistToken_Blocked(address)", provider2.address):
        market.completeUnstake({"from": provider2})
    tx = market.completeUnstakeTo(stranger, {"from": provider2})
    assert tx.events["Unstaked"]["provider"] == provider2
    assert tx.events["Unstaked"]["amount"] == MIN_STAKE_PER_GPU
    assert blk.balanceOf(stranger) == MIN_STAKE_PER_GPU
    assert market.stakeOf(provider2)["unbonding"] == 0
    solvent(token=blk)
