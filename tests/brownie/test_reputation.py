"""IReputation: counters change only at finalization and slashing; the score follows the
documented formula avg_uptime * completed / (completed + abandoned + 2 * slashes + 1)."""

from brownie import ZERO_ADDRESS, chain

from conftest import BUDGET, PARAMS, open_rental
from market_testkit import plain


def _run(market, oracle, stablecoin, renter, provider, relayer, offer_id, available, uptime):
    """A one-GPU rental that attests ``available`` seconds and lasts about available / uptime;
    returns its id, the finalize tx and the uptime the contract derives from it (uptime is not
    stored per report: it is available / (gpuCount x (endedAt - startedAt)))."""
    rid = open_rental(market, stablecoin, renter, offer_id, BUDGET)
    started = market.startRental(rid, {"from": provider}).timestamp
    if available is not None:
        oracle.settle(rid, 1, available, relayer, uptimeBps=uptime)
        end_at = started + -(-available * 10_000 // uptime)
        if end_at > chain.time():
            chain.sleep(end_at - chain.time())
    ended = market.endRental(rid, {"from": renter}).timestamp
    derived = 0 if available is None or ended == started else min(10_000, available * 10_000 // (ended - started))
    return rid, market.finalizeRental(rid, {"from": provider}), derived


def test_reputationOf_unknown_provider_is_zero(market, stranger):
    assert plain(market.reputationOf(stranger)) == (0, 0, 0, 0, 0, 0)
    assert market.reputationScore(ZERO_ADDRESS) == 0


def test_finalizeRental_records_completed_rental_and_emits(market, oracle, stablecoin, renter, provider, relayer, offer_id):
    _, tx, uptime = _run(market, oracle, stablecoin, renter, provider, relayer, offer_id, 3_000, 9_800)
    assert 9_700 <= uptime <= 9_800
    rep = market.reputationOf(provider)
    assert (rep["completedRentals"], rep["abandonedRentals"], rep["slashCount"]) == (1, 0, 0)
    assert (rep["reportedRentals"], rep["attestedGpuSeconds"], rep["uptimeBpsSum"]) == (1, 3_000, uptime)
    ev = tx.events["ReputationUpdated"]
    assert ev["provider"] == provider
    assert plain(ev["reputation"]) == plain(rep)
    assert market.reputationScore(provider) == uptime * 1 // (1 + 0 + 0 + 1)


def test_reputation_counts_only_at_finalization(market, oracle, stablecoin, renter, provider, relayer, rental_id):
    oracle.settle(rental_id, 1, 500, relayer)
    market.endRental(rental_id, {"from": renter})
    assert plain(market.reputationOf(provider)) == (0, 0, 0, 0, 0, 0)


def test_finalizeRental_without_reports_counts_completed_but_no_uptime(market, oracle, stablecoin, renter, provider, relayer, offer_id):
    _run(market, oracle, stablecoin, renter, provider, relayer, offer_id, None, 0)
    rep = market.reputationOf(provider)
    assert (rep["completedRentals"], rep["reportedRentals"], rep["uptimeBpsSum"]) == (1, 0, 0)
    assert market.reputationScore(provider) == 0


def test_closeSilentRental_counts_as_abandoned(market, oracle, stablecoin, renter, provider, stranger, relayer, rental_id):
    oracle.settle(rental_id, 1, 100, relayer, uptimeBps=5_000)
    chain.sleep(PARAMS["silenceTimeout"] + 1)
    market.closeSilentRental(rental_id, {"from": stranger})
    chain.sleep(PARAMS["settlementGrace"] + 1)
    tx = market.finalizeRental(rental_id, {"from": stranger})
    assert tx.events["RentalFinalized"]["abandoned"] is True
    rep = market.reputationOf(provider)
    assert (rep["completedRentals"], rep["abandonedRentals"], rep["reportedRentals"]) == (0, 1, 1)
    assert market.reputationScore(provider) == 0


def test_reputationScore_formula_with_history_and_slashes(market, oracle, stablecoin, renter, provider, relayer, offer_id):
    uptimes = [_run(market, oracle, stablecoin, renter, provider, relayer, offer_id, available, uptime)[2]
               for available, uptime in [(100, 9_000), (200, 10_000), (300, 9_500)]]
    rid = open_rental(market, stablecoin, renter, offer_id, BUDGET)
    market.startRental(rid, {"from": provider})
    oracle.slash(rid, relayer)
    rep = market.reputationOf(provider)
    total = sum(uptimes)
    assert (rep["completedRentals"], rep["slashCount"], rep["attestedGpuSeconds"], rep["uptimeBpsSum"]) == (3, 1, 600, total)
    assert market.reputationScore(provider) == (total // 3) * 3 // (3 + 0 + 2 * 1 + 1)
