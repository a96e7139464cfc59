"""Conservation of money across whole lifecycles: after every step the market's token balance
equals escrowed budgets + stakes + withdrawable balances; in the end everything deposited or
staked comes back out to someone, and nothing is paid out that was not paid in."""

from brownie import chain

from conftest import (
    finalize_after_grace,
    BUDGET,
    MIN_STAKE_PER_GPU,
    PARAMS,
    UNIT,
    cost,
    fee_of,
    offer_terms,
    open_rental,
    stake_for,
)


def test_full_market_day_conserves_money(
    market, oracle, stablecoin, provider, provider2, renter, renter2, relayer, stranger, treasury, agent, offer_id, solvent, accounts
):
    people = [provider, provider2, renter, renter2, relayer, stranger, treasury]
    stablecoin.mint(stranger, 5 * UNIT, {"from": stranger})
    start = {p: stablecoin.balanceOf(p) for p in people}
    start_market = stablecoin.balanceOf(market)  # the provider's stake from the fixture

    stake_for(market, stablecoin, provider2, gpus=2)
    oid2 = market.createOffer(offer_terms(stablecoin, agent, gpuCount=2), {"from": provider2}).events["OfferCreated"]["offerId"]
    solvent()

    a = open_rental(market, stablecoin, renter, offer_id, BUDGET, gpus=2)  # completes normally
    b = open_rental(market, stablecoin, renter2, oid2, BUDGET)  # budget exhausted
    c = open_rental(market, stablecoin, renter, oid2, 3 * UNIT)  # never started, cancelled by anyone
    d = open_rental(market, stablecoin, renter2, offer_id, BUDGET)  # provider goes silent, slashed
    solvent()
    market.startRental(a, {"from": provider})
    market.startRental(b, {"from": provider2})
    market.startRental(d, {"from": provider})
    stablecoin.approve(market, 5 * UNIT, {"from": stranger})
    market.topUp(a, 5 * UNIT, {"from": stranger})
    solvent()

    reports = [oracle.usage(a, 1, 7_200, energyMillijoules=10**9), oracle.usage(b, 1, 50_000), oracle.usage(d, 1, 10)]
    market.settleBatch([r.as_tuple() for r in reports], oracle.sign_batch(reports), {"from": relayer})
    solvent()
    oracle.settle(a, 2, 14_400, relayer, energy=5 * 10**9)
    oracle.settle(b, 2, 10**6, relayer)  # more than the budget buys: ends b
    assert market.getRental(b)["status"] == 3
    solvent()
    oracle.slash(d, relayer, fault_id=0, kind=1)
    oracle.slash(a, relayer, fault_id=0, kind=2)
    solvent()

    chain.sleep(PARAMS["startTimeout"] + 1)
    market.cancelRental(c, {"from": stranger})
    market.endRental(a, {"from": renter})
    chain.sleep(PARAMS["silenceTimeout"])
    market.closeSilentRental(d, {"from": stranger})
    solvent()
    chain.sleep(PARAMS["settlementGrace"] + 1)
    for rid in (a, b, d):
        finalize_after_grace(market, rid, stranger)
        solvent()

    # everyone takes their money out; providers unstake everything
    for p in (provider, provider2):
        for oid in range(1, market.offerCount() + 1):
            offer = market.getOffer(oid)
            if offer["provider"] == p and offer["active"]:
                market.withdrawOffer(oid, {"from": p})
        market.requestUnstake(market.stakeOf(p)["active"], {"from": p})
    chain.sleep(PARAMS["unbondingDelay"] + 1)
    for p in (provider, provider2):
        market.completeUnstake({"from": p})
    for p in people:
        if market.withdrawable(p, stablecoin):
            market.withdraw(stablecoin, {"from": p})
        solvent()

    assert stablecoin.balanceOf(market) == 0
    net = {p: stablecoin.balanceOf(p) - start[p] for p in people}
    # nothing created or destroyed: what people gained is what the market held at the start
    assert sum(net.values()) == start_market
    # and the pieces are the documented ones
    paid_a = cost(14_400, 5 * 10**9)
    assert market.getRental(a)["paid"] == paid_a
    assert market.getRental(b)["paid"] == BUDGET
    fees = sum(fee_of(market.getRental(r)["paid"], PARAMS["protocolFeeBps"]) for r in (a, b, d))
    slash_a = MIN_STAKE_PER_GPU * 2 * PARAMS["slashBps"] // 10_000
    slash_d = MIN_STAKE_PER_GPU * 1 * PARAMS["slashBps"] // 10_000
    # the renters' shares of the slashes are capped by what each rental cost them (docs/economics.md)
    paid_d = market.getRental(d)["paid"]
    renter_a = min(slash_a * PARAMS["renterSlashShareBps"] // 10_000, paid_a)
    renter_d = min(slash_d * PARAMS["renterSlashShareBps"] // 10_000, paid_d)
    assert renter_d == paid_d < slash_d * PARAMS["renterSlashShareBps"] // 10_000  # d's cap bites
    treasury_slash = slash_a + slash_d - renter_a - renter_d
    assert net[treasury] == fees + treasury_slash
    assert net[relayer] == 0


def test_every_exit_returns_a_cancelled_or_unstarted_deposit(market, stablecoin, renter, stranger, offer_id, solvent):
    """No call sequence locks a deposit: an unstarted rental is reclaimable by anyone after the
    start deadline, and the refund is exactly the deposit."""
    before = stablecoin.balanceOf(renter)
    rid = open_rental(market, stablecoin, renter, offer_id, BUDGET)
    chain.sleep(PARAMS["startTimeout"] + 1)
    market.cancelRental(rid, {"from": stranger})
    market.withdraw(stablecoin, {"from": renter})
    assert stablecoin.balanceOf(renter) == before
    solvent()


def test_silent_provider_cannot_lock_an_active_deposit(market, stablecoin, renter, stranger, rental_id, solvent):
    before = stablecoin.balanceOf(renter)
    chain.sleep(PARAMS["silenceTimeout"] + 1)
    market.closeSilentRental(rental_id, {"from": stranger})
    chain.sleep(PARAMS["settlementGrace"] + 1)
    finalize_after_grace(market, rental_id, stranger)
    market.withdraw(stablecoin, {"from": renter})
    assert stablecoin.balanceOf(renter) == before + BUDGET
    solvent()
