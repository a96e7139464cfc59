"""IReputation: counters change only at finalization and slashing; the score follows the formula
of docs/economics.md: 10000 * deliveredFees / (feesPaid + abandonedCollateral + slashedAmount + prior),
where a rental's fee counts fully in feesPaid and, if it completed with attested usage, weighted by
its attested uptime (available GPU-seconds / rented GPU-seconds) in deliveredFees."""

from brownie import ZERO_ADDRESS, chain

from conftest import BUDGET, MIN_STAKE_PER_GPU, PARAMS, fee_of, finalize_after_grace, open_rental
from market_testkit import plain

FEE_BPS = PARAMS["protocolFeeBps"]
PRIOR = PARAMS["reputationPrior"]


def _uptime_bps(market, rid) -> int:
    r = market.getRental(rid)
    rented = int(r["gpuCount"]) * (int(r["endedAt"]) - int(r["startedAt"]))
    return min(10_000, int(r["availableGpuSeconds"]) * 10_000 // rented) if rented else 0


def _run(market, oracle, stablecoin, renter, provider, relayer, offer_id, available, duration_s=1_000, ender=None):
    rid = open_rental(market, stablecoin, renter, offer_id, BUDGET)
    market.startRental(rid, {"from": provider})
    chain.sleep(duration_s)
    if available is not None:
        oracle.settle(rid, 1, available, relayer)
    market.endRental(rid, {"from": ender or renter})
    return rid, finalize_after_grace(market, rid, provider)


def test_reputationOf_unknown_provider_is_zero(market, stranger):
    assert plain(market.reputationOf(stranger)) == (0,) * 10
    assert market.reputationScore(ZERO_ADDRESS) == 0


def test_finalizeRental_records_completed_rental_weighted_by_fee_and_uptime(
    market, oracle, stablecoin, renter, provider, relayer, offer_id
):
    rid, tx = _run(market, oracle, stablecoin, renter, provider, relayer, offer_id, 900)
    rep = market.reputationOf(provider)
    fee = fee_of(int(market.getRental(rid)["paid"]), FEE_BPS)
    uptime = _uptime_bps(market, rid)
    assert 0 < uptime < 10_000
    assert (rep["completedRentals"], rep["abandonedRentals"], rep["slashCount"]) == (1, 0, 0)
    assert (rep["attestedGpuSeconds"], rep["feesPaid"], rep["deliveredFees"]) == (900, fee, fee * uptime // 10_000)
    ev = tx.events["ReputationUpdated"]
    assert ev["provider"] == provider
    assert plain(ev["reputation"]) == plain(rep)
    assert market.reputationScore(provider) == 10_000 * (fee * uptime // 10_000) // (fee + PRIOR)


def test_reputation_counts_only_at_finalization(market, oracle, stablecoin, renter, provider, relayer, rental_id):
    oracle.settle(rental_id, 1, 500, relayer)
    market.endRental(rental_id, {"from": renter})
    assert plain(market.reputationOf(provider)) == (0,) * 10


def test_finalizeRental_renterEndedWithoutUsage_countsForNothing(
    market, oracle, stablecoin, renter, provider, relayer, offer_id
):
    _run(market, oracle, stablecoin, renter, provider, relayer, offer_id, None)
    assert plain(market.reputationOf(provider)) == (0,) * 10
    assert market.reputationScore(provider) == 0


def test_finalizeRental_providerEndedWithoutUsage_countsAsAbandoned(
    market, oracle, stablecoin, renter, provider, relayer, offer_id
):
    _, tx = _run(market, oracle, stablecoin, renter, provider, relayer, offer_id, None, ender=provider)
    assert tx.events["RentalFinalized"]["abandoned"] is True
    rep = market.reputationOf(provider)
    assert (rep["completedRentals"], rep["abandonedRentals"], rep["abandonedCollateral"]) == (0, 1, MIN_STAKE_PER_GPU)


def test_closeSilentRental_counts_as_abandoned(market, oracle, stablecoin, renter, provider, stranger, relayer, rental_id):
    oracle.settle(rental_id, 1, 100, relayer)
    chain.sleep(PARAMS["silenceTimeout"] + 1)
    market.closeSilentRental(rental_id, {"from": stranger})
    tx = finalize_after_grace(market, rental_id, stranger)
    assert tx.events["RentalFinalized"]["abandoned"] is True
    rep = market.reputationOf(provider)
    assert (rep["completedRentals"], rep["abandonedRentals"]) == (0, 1)
    assert rep["abandonedCollateral"] == MIN_STAKE_PER_GPU and rep["deliveredFees"] == 0
    assert market.reputationScore(provider) == 0


def test_reputationScore_formula_with_history_and_slashes(market, oracle, stablecoin, renter, provider, relayer, offer_id):
    fees = delivered = 0
    for available in (100, 200, 300):
        rid, _ = _run(market, oracle, stablecoin, renter, provider, relayer, offer_id, available, duration_s=400)
        fee = fee_of(int(market.getRental(rid)["paid"]), FEE_BPS)
        fees += fee
        delivered += fee * _uptime_bps(market, rid) // 10_000
    rid = open_rental(market, stablecoin, renter, offer_id, BUDGET)
    market.startRental(rid, {"from": provider})
    oracle.slash(rid, relayer)
    slashed = MIN_STAKE_PER_GPU * PARAMS["slashBps"] // 10_000
    rep = market.reputationOf(provider)
    assert (rep["completedRentals"], rep["slashCount"], rep["attestedGpuSeconds"]) == (3, 1, 600)
    assert (rep["feesPaid"], rep["deliveredFees"], rep["slashedAmount"]) == (fees, delivered, slashed)
    assert market.reputationScore(provider) == 10_000 * delivered // (fees + slashed + PRIOR)
