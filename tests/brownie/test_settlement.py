"""IUsageSettlement: settle, settleBatch, the digests and costOf, with every revert path, and the
money: provider credit = cost delta minus fee, renter refund = deposit - paid, treasury = fee."""

import pytest
from brownie import chain

from conftest import (
    finalize_after_grace,
    BUDGET,
    MJ_PER_KWH,
    PARAMS,
    PRICE_PER_GPU_HOUR,
    PRICE_PER_KWH,
    THRESHOLD,
    cost,
    earned,
    fee_of,
    open_rental,
)
from market_testkit import (
    event_args,
    plain,
    reverts_with,
    settled_reports,
    usage_batch_digest,
    usage_report_digest,
)

ACTIVE, ENDED, CANCELLED, FINALIZED = 2, 3, 4, 5
BUDGET_EXHAUSTED = 3
FEE_BPS = PARAMS["protocolFeeBps"]


def credit(paid_before, paid_after):
    return (paid_after - fee_of(paid_after, FEE_BPS)) - (paid_before - fee_of(paid_before, FEE_BPS))


# ------------------------------------------------------------------ settle


def test_settle_accrues_cost_in_the_rental_and_claim_credits_the_provider(market, oracle, stablecoin, provider, stranger, relayer, rental_id, solvent):
    report = oracle.usage(rental_id, 1, 1_800, energyMillijoules=MJ_PER_KWH // 2, uptimeBps=9_876)
    tx = market.settle(report.as_tuple(), oracle.sign_usage(report), {"from": relayer})
    payment = cost(1_800, MJ_PER_KWH // 2)
    assert payment == 1_800 * PRICE_PER_GPU_HOUR // 3_600 + PRICE_PER_KWH // 2
    assert event_args(tx.events["UsageSettled"]) == (rental_id, 1, payment)
    assert market.withdrawable(provider, stablecoin) == 0  # settlement writes no balance
    assert market.claimable(rental_id) == payment - fee_of(payment, FEE_BPS)
    r = market.getRental(rental_id)
    assert (r["sequence"], r["availableGpuSeconds"], r["paid"], r["claimed"]) == (1, 1_800, payment, 0)
    assert r["lastSettledAt"] == tx.timestamp
    solvent()
    claim = market.claim([rental_id], {"from": stranger})  # anyone may claim for the provider
    assert event_args(claim.events["EarningsClaimed"]) == (rental_id, provider, payment - fee_of(payment, FEE_BPS))
    assert market.withdrawable(provider, stablecoin) == payment - fee_of(payment, FEE_BPS)
    assert market.withdrawable(stranger, stablecoin) == 0
    assert market.claimable(rental_id) == 0
    solvent()


def test_settle_cumulative_reports_pay_only_the_delta(market, oracle, stablecoin, provider, relayer, rental_id, solvent):
    points = [(1, 100, 10**6), (2, 250, 3 * 10**6), (5, 1_000, 9 * 10**9), (6, 1_000, 9 * 10**9 + 7)]
    paid = 0
    for seq, available, energy in points:
        before = market.withdrawable(provider, stablecoin)
        tx = oracle.settle(rental_id, seq, available, relayer, energy=energy)
        new_paid = cost(available, energy)
        assert tx.events["UsageSettled"]["payment"] == new_paid - paid
        assert market.withdrawable(provider, stablecoin) - before == credit(paid, new_paid)
        paid = new_paid
        solvent()
    assert market.getRental(rental_id)["paid"] == paid


def test_settle_by_provider_itself(market, oracle, stablecoin, provider, rental_id):
    oracle.settle(rental_id, 1, 60, provider)
    assert market.withdrawable(provider, stablecoin) == credit(0, cost(60))


def test_settle_zero_usage_pays_nothing_but_counts(market, oracle, stablecoin, provider, relayer, rental_id):
    tx = oracle.settle(rental_id, 1, 0, relayer)
    assert tx.events["UsageSettled"]["payment"] == 0
    assert market.withdrawable(provider, stablecoin) == 0
    assert market.getRental(rental_id)["sequence"] == 1


def test_settle_lower_energy_pays_nothing_more(market, oracle, stablecoin, provider, relayer, rental_id):
    oracle.settle(rental_id, 1, 100, relayer, energy=10 * MJ_PER_KWH)
    balance = market.withdrawable(provider, stablecoin)
    tx = oracle.settle(rental_id, 2, 100, relayer, energy=MJ_PER_KWH)
    assert tx.events["UsageSettled"]["payment"] == 0
    assert market.withdrawable(provider, stablecoin) == balance


def test_settle_caps_payment_at_budget_and_ends_rental(market, oracle, stablecoin, renter, provider, treasury, relayer, rental_id, solvent):
    over = BUDGET * 3_600 // PRICE_PER_GPU_HOUR + 5_000  # more seconds than the budget buys
    tx = oracle.settle(rental_id, 1, over, relayer)
    assert tx.events["UsageSettled"]["payment"] == BUDGET
    ended = tx.events["RentalEnded"]
    assert (ended["rentalId"], ended["reason"]) == (rental_id, BUDGET_EXHAUSTED)
    r = market.getRental(rental_id)
    assert (r["status"], r["paid"], r["endReason"]) == (ENDED, BUDGET, BUDGET_EXHAUSTED)
    # a later report within the grace pays nothing more
    tx = oracle.settle(rental_id, 2, over, relayer, periodEnd=r["endedAt"])
    assert tx.events["UsageSettled"]["payment"] == 0
    finalize_after_grace(market, rental_id, provider)
    assert market.withdrawable(renter, stablecoin) == 0
    assert market.withdrawable(provider, stablecoin) + market.withdrawable(treasury, stablecoin) == BUDGET
    solvent()


def test_settle_ended_rental_within_grace_up_to_end(market, oracle, stablecoin, renter, provider, relayer, rental_id):
    chain.sleep(600)
    tx = market.endRental(rental_id, {"from": renter})
    chain.sleep(3_600)
    oracle.settle(rental_id, 1, 600, relayer, periodEnd=tx.timestamp)
    assert market.withdrawable(provider, stablecoin) == credit(0, cost(600))


def test_RevertWhen_settle_ended_rental_report_covers_time_after_end(market, oracle, renter, relayer, rental_id):
    tx = market.endRental(rental_id, {"from": renter})
    with reverts_with("UsageSettlement_PeriodAfterEnd(uint256,uint64,uint32)", rental_id, tx.timestamp + 1, tx.timestamp):
        oracle.settle(rental_id, 1, 600, relayer, periodEnd=tx.timestamp + 1)


def test_RevertWhen_settle_ended_rental_after_grace(market, oracle, renter, relayer, rental_id):
    tx = market.endRental(rental_id, {"from": renter})
    chain.sleep(PARAMS["settlementGrace"] + 1)
    with reverts_with("UsageSettlement_NotSettleable(uint256,uint8)", rental_id, ENDED):
        oracle.settle(rental_id, 1, 600, relayer, periodEnd=tx.timestamp)


def test_RevertWhen_settle_rental_not_started(market, oracle, stablecoin, renter, relayer, offer_id):
    rid = open_rental(market, stablecoin, renter, offer_id, BUDGET)
    with reverts_with("UsageSettlement_NotSettleable(uint256,uint8)", rid, 1):
        oracle.settle(rid, 1, 60, relayer)


def test_RevertWhen_settle_rental_cancelled(market, oracle, stablecoin, renter, relayer, offer_id):
    rid = open_rental(market, stablecoin, renter, offer_id, BUDGET)
    market.cancelRental(rid, {"from": renter})
    with reverts_with("UsageSettlement_NotSettleable(uint256,uint8)", rid, CANCELLED):
        oracle.settle(rid, 1, 60, relayer)


def test_RevertWhen_settle_rental_unknown(market, oracle, relayer):
    with reverts_with("UsageSettlement_NotSettleable(uint256,uint8)", 77, 0):
        oracle.settle(77, 1, 60, relayer)


def test_RevertWhen_settle_same_report_twice(market, oracle, stablecoin, provider, renter, relayer, rental_id, solvent):
    """Adversarial: replaying a settled report (same bytes, same signatures) pays nothing."""
    report = oracle.usage(rental_id, 1, 500)
    signatures = oracle.sign_usage(report)
    market.settle(report.as_tuple(), signatures, {"from": relayer})
    balance = market.withdrawable(provider, stablecoin)
    with reverts_with("UsageSettlement_StaleSequence(uint256,uint64,uint32)", rental_id, 1, 1):
        market.settle(report.as_tuple(), signatures, {"from": relayer})
    with reverts_with("UsageSettlement_StaleSequence(uint256,uint64,uint32)", rental_id, 1, 1):
        market.settle(report.as_tuple(), signatures, {"from": provider})
    assert market.withdrawable(provider, stablecoin) == balance
    assert market.getRental(rental_id)["paid"] == cost(500)
    solvent()


def test_RevertWhen_settle_out_of_order_older_report(market, oracle, relayer, rental_id):
    old = oracle.usage(rental_id, 2, 200)
    old_sigs = oracle.sign_usage(old)
    oracle.settle(rental_id, 5, 500, relayer)
    with reverts_with("UsageSettlement_StaleSequence(uint256,uint64,uint32)", rental_id, 2, 5):
        market.settle(old.as_tuple(), old_sigs, {"from": relayer})


def test_RevertWhen_settle_available_goes_down(market, oracle, relayer, rental_id):
    oracle.settle(rental_id, 1, 500, relayer)
    with reverts_with("UsageSettlement_AvailableDecreased(uint256,uint64,uint40)", rental_id, 499, 500):
        oracle.settle(rental_id, 2, 499, relayer)


@pytest.mark.parametrize(
    "sequence,available,uptime",
    [(2**32, 1, 10_000), (1, 2**40, 10_000), (1, 1, 10_001)],
    ids=["sequence>uint32", "available>uint40", "uptime>10000"],
)
def test_RevertWhen_settle_value_out_of_range(market, oracle, relayer, rental_id, sequence, available, uptime):
    with reverts_with("UsageSettlement_ValueOutOfRange(uint256)", rental_id):
        oracle.settle(rental_id, sequence, available, relayer, uptimeBps=uptime)


def test_RevertWhen_settle_signature_quorum_missing(market, oracle, relayer, rental_id):
    report = oracle.usage(rental_id, 1, 10)
    with reverts_with("OracleQuorum_NotEnoughSignatures(uint256,uint8)", 65 * (THRESHOLD - 1), THRESHOLD):
        market.settle(report.as_tuple(), oracle.sign_usage(report, keys=oracle.keys[: THRESHOLD - 1]), {"from": relayer})


def test_settle_front_runner_cannot_redirect_payment(market, oracle, stablecoin, provider, renter, relayer, rental_id, solvent):
    """Adversarial: a front-runner copies the provider's pending settle from the mempool and
    submits it first. The money goes to the provider exactly as if the provider had submitted;
    the provider's own transaction then fails as stale; the front-runner gains nothing."""
    report = oracle.usage(rental_id, 1, 2_000, energyMillijoules=MJ_PER_KWH)
    signatures = oracle.sign_usage(report)
    relayer_balance = stablecoin.balanceOf(relayer)

    market.settle(report.as_tuple(), signatures, {"from": relayer})  # the front-runner
    expected = credit(0, cost(2_000, MJ_PER_KWH))
    assert earned(market, provider, stablecoin) == expected
    assert market.withdrawable(relayer, stablecoin) == 0
    assert stablecoin.balanceOf(relayer) == relayer_balance
    with reverts_with("UsageSettlement_StaleSequence(uint256,uint64,uint32)", rental_id, 1, 1):
        market.settle(report.as_tuple(), signatures, {"from": provider})
    assert earned(market, provider, stablecoin) == expected
    market.endRental(rental_id, {"from": renter})
    finalize_after_grace(market, rental_id, provider)
    assert market.withdrawable(renter, stablecoin) == BUDGET - cost(2_000, MJ_PER_KWH)
    solvent()


def test_settle_rental_of_another_provider_pays_that_provider(market, oracle, stablecoin, provider, provider2, renter2, agent, relayer, rental_id):
    """A report names a rental id; the payout follows the rental's provider, never the submitter."""
    from conftest import offer_terms, stake_for

    stake_for(market, stablecoin, provider2, gpus=1)
    oid = market.createOffer(offer_terms(stablecoin, agent, gpuCount=1), {"from": provider2}).events["OfferCreated"]["offerId"]
    rid2 = open_rental(market, stablecoin, renter2, oid, BUDGET)
    market.startRental(rid2, {"from": provider2})
    oracle.settle(rid2, 1, 100, provider)  # submitted by the other provider
    assert market.withdrawable(provider2, stablecoin) == credit(0, cost(100))
    assert market.withdrawable(provider, stablecoin) == 0


# ------------------------------------------------------------------ dust


def test_settle_dust_many_tiny_settlements_never_pay_more_than_one_big(
    market, oracle, stablecoin, renter, provider, agent, relayer, offer_id, solvent
):
    """Adversarial: prices that do not divide evenly, settled one GPU-second and a few mJ at a
    time, pay exactly what one settlement of the total pays, never more."""
    from conftest import offer_terms

    odd = offer_terms(stablecoin, agent, pricePerGpuHour=3_599, pricePerKwh=3_599_999)
    market.updateOffer(offer_id, odd, {"from": provider})
    small = open_rental(market, stablecoin, renter, offer_id, BUDGET)
    big = open_rental(market, stablecoin, renter, offer_id, BUDGET)
    market.startRental(small, {"from": provider})
    market.startRental(big, {"from": provider})
    steps = 25
    for i in range(1, steps + 1):
        oracle.settle(small, i, i, relayer, energy=i * 999)
    oracle.settle(big, 1, steps, relayer, energy=steps * 999)
    paid_small = market.getRental(small)["paid"]
    paid_big = market.getRental(big)["paid"]
    assert paid_small == paid_big == steps * 3_599 // 3_600 + steps * 999 * 3_599_999 // MJ_PER_KWH
    assert paid_small <= steps * 3_599 / 3_600 + steps * 999 * 3_599_999 / MJ_PER_KWH  # never above exact
    solvent()


def test_settle_dust_never_pays_more_than_deposited(market, oracle, stablecoin, renter, provider, treasury, relayer, offer_id, solvent):
    """Adversarial: a tiny deposit settled by many reports: total paid out never exceeds it."""
    deposit = 7_777  # 7.777 GPU-seconds at 1,000 units per second
    rid = open_rental(market, stablecoin, renter, offer_id, deposit)
    market.startRental(rid, {"from": provider})
    for i in range(1, 12):
        if market.getRental(rid)["status"] != ACTIVE:
            break
        oracle.settle(rid, i, i, relayer, energy=i * MJ_PER_KWH // 1_000)
    assert market.getRental(rid)["paid"] <= deposit
    if market.getRental(rid)["status"] == ACTIVE:
        market.endRental(rid, {"from": renter})
    finalize_after_grace(market, rid, provider)
    total_out = sum(market.withdrawable(a, stablecoin) for a in (renter, provider, treasury))
    assert total_out == deposit
    solvent()


# ------------------------------------------------------------------ settleBatch


@pytest.fixture
def three_rentals(market, stablecoin, renter, renter2, provider, offer_id):
    ids = []
    for who in (renter, renter2, renter):
        rid = open_rental(market, stablecoin, who, offer_id, BUDGET)
        market.startRental(rid, {"from": provider})
        ids.append(rid)
    return ids


def test_settleBatch_settles_every_rental_and_emits(market, oracle, stablecoin, provider, relayer, three_rentals, solvent):
    reports = [oracle.usage(rid, 1, 100 * (i + 1)) for i, rid in enumerate(three_rentals)]
    tx = market.settleBatch([r.as_tuple() for r in reports], oracle.sign_batch(reports), {"from": relayer})
    # One UsageBatchSettled (decoded through the ABI: checks the contract's literal topic) and no
    # UsageSettled per report.
    assert "UsageSettled" not in tx.events
    assert len(tx.events["UsageBatchSettled"]) == 1
    expected = [(rid, 1, cost(100 * (i + 1))) for i, rid in enumerate(three_rentals)]
    assert plain(tx.events["UsageBatchSettled"]["settled"]) == tuple(r << 128 | q << 96 | p for r, q, p in expected)
    assert settled_reports(tx) == expected
    assert earned(market, provider, stablecoin) == sum(credit(0, cost(100 * (i + 1))) for i in range(3))
    solvent()


def test_settleBatch_skips_already_settled_reports(market, oracle, stablecoin, provider, relayer, three_rentals):
    a, b, c = three_rentals
    oracle.settle(b, 3, 300, relayer)  # b settled further by someone else first
    reports = [oracle.usage(a, 1, 100), oracle.usage(b, 2, 200), oracle.usage(c, 1, 100)]
    before = earned(market, provider, stablecoin)
    tx = market.settleBatch([r.as_tuple() for r in reports], oracle.sign_batch(reports), {"from": relayer})
    assert event_args(tx.events["UsageReportSkipped"]) == (b, 2)
    assert [s[0] for s in settled_reports(tx)] == [a, c]
    assert market.getRental(b)["sequence"] == 3
    assert earned(market, provider, stablecoin) - before == 2 * credit(0, cost(100))


def test_settleBatch_skips_rental_that_cannot_settle(market, oracle, provider, relayer, three_rentals):
    a, b, _ = three_rentals
    market.endRental(b, {"from": provider})
    chain.sleep(PARAMS["settlementGrace"] + 1)
    reports = [oracle.usage(a, 1, 100), oracle.usage(b, 1, 100)]
    tx = market.settleBatch([r.as_tuple() for r in reports], oracle.sign_batch(reports), {"from": relayer})
    assert [e["rentalId"] for e in tx.events["UsageReportSkipped"]] == [b]
    assert settled_reports(tx) == [(a, 1, cost(100))]


def test_RevertWhen_settleBatch_replayed(market, oracle, relayer, three_rentals):
    """Adversarial: the same batch twice settles nothing the second time."""
    reports = [oracle.usage(rid, 1, 100) for rid in three_rentals]
    signatures = oracle.sign_batch(reports)
    market.settleBatch([r.as_tuple() for r in reports], signatures, {"from": relayer})
    with reverts_with("UsageSettlement_NothingSettled()"):
        market.settleBatch([r.as_tuple() for r in reports], signatures, {"from": relayer})


def test_RevertWhen_settleBatch_empty(market, oracle, relayer):
    with reverts_with("UsageSettlement_NothingSettled()"):
        market.settleBatch([], oracle.sign_batch([]), {"from": relayer})


def test_RevertWhen_settleBatch_report_names_old_signer_set(market, oracle, relayer, three_rentals):
    reports = [oracle.usage(three_rentals[0], 1, 100), oracle.usage(three_rentals[1], 1, 100, signerSetVersion=0)]
    with reverts_with("OracleQuorum_WrongSignerSetVersion(uint32,uint32)", 0, 1):
        market.settleBatch([r.as_tuple() for r in reports], oracle.sign_batch(reports), {"from": relayer})


def test_RevertWhen_settleBatch_with_single_report_signatures(market, oracle, relayer, rental_id):
    """A quorum over one UsageReport does not authorize a one-element batch (distinct type hash)."""
    from market_testkit import recover

    report = oracle.usage(rental_id, 1, 100)
    signatures = oracle.sign_usage(report)
    stray = recover(usage_batch_digest([report], chain.id, market.address), signatures[:65])
    with reverts_with("OracleQuorum_UnknownSigner(uint256,address)", 0, stray):
        market.settleBatch([report.as_tuple()], signatures, {"from": relayer})


def test_RevertWhen_settleBatch_report_swapped_after_signing(market, oracle, relayer, three_rentals):
    from market_testkit import recover

    reports = [oracle.usage(rid, 1, 100) for rid in three_rentals]
    signatures = oracle.sign_batch(reports)
    tampered = [reports[0], reports[1], reports[2].but(availableGpuSeconds=10**6)]
    stray = recover(usage_batch_digest(tampered, chain.id, market.address), signatures[:65])
    with reverts_with("OracleQuorum_UnknownSigner(uint256,address)", 0, stray):
        market.settleBatch([r.as_tuple() for r in tampered], signatures, {"from": relayer})


def test_RevertWhen_settleBatch_contains_malformed_value(market, oracle, relayer, three_rentals):
    reports = [oracle.usage(three_rentals[0], 1, 100), oracle.usage(three_rentals[1], 1, 100, uptimeBps=10_001)]
    with reverts_with("UsageSettlement_ValueOutOfRange(uint256)", three_rentals[1]):
        market.settleBatch([r.as_tuple() for r in reports], oracle.sign_batch(reports), {"from": relayer})


# ------------------------------------------------------------------ views


def test_usageReportDigest_matches_eip712_spec(market, oracle, rental_id):
    report = oracle.usage(rental_id, 9, 12_345, energyMillijoules=2**100, carbonMilligrams=2**120, faultFlags=0b10110)
    assert market.usageReportDigest(report.as_tuple()) == "0x" + usage_report_digest(report, chain.id, market.address).hex()


def test_usageBatchDigest_matches_eip712_spec(market, oracle, rental_id):
    reports = [oracle.usage(rental_id + i, i + 1, 10 * i) for i in range(4)]
    expected = usage_batch_digest(reports, chain.id, market.address)
    assert market.usageBatchDigest([r.as_tuple() for r in reports]) == "0x" + expected.hex()


def test_costOf_uses_rental_snapshot_prices(market, rental_id):
    assert market.costOf(rental_id, 3_601, MJ_PER_KWH + 1) == cost(3_601, MJ_PER_KWH + 1)


def test_costOf_rounds_down(market, stablecoin, provider, renter, agent, offer_id):
    from conftest import offer_terms

    market.updateOffer(offer_id, offer_terms(stablecoin, agent, pricePerGpuHour=7, pricePerKwh=7), {"from": provider})
    rid = open_rental(market, stablecoin, renter, offer_id, BUDGET)
    assert market.costOf(rid, 3_599, MJ_PER_KWH - 1) == 6 + 6


def test_settleBatch_same_report_twice_in_one_batch_settles_once(market, oracle, stablecoin, provider, relayer, rental_id):
    report = oracle.usage(rental_id, 1, 1_000)
    reports = [report, report]
    tx = market.settleBatch([r.as_tuple() for r in reports], oracle.sign_batch(reports), {"from": relayer})
    assert settled_reports(tx) == [(rental_id, 1, cost(1_000))]
    assert event_args(tx.events["UsageReportSkipped"]) == (rental_id, 1)
    assert earned(market, provider, stablecoin) == credit(0, cost(1_000))


def test_settleBatch_successive_reports_of_one_rental(market, oracle, stablecoin, provider, relayer, rental_id):
    reports = [oracle.usage(rental_id, 1, 1_000), oracle.usage(rental_id, 2, 1_500)]
    tx = market.settleBatch([r.as_tuple() for r in reports], oracle.sign_batch(reports), {"from": relayer})
    assert [s[2] for s in settled_reports(tx)] == [cost(1_000), cost(1_500) - cost(1_000)]
    assert earned(market, provider, stablecoin) == credit(0, cost(1_500))


def test_settleBatch_report_after_exhausting_one_settles_nothing_more(market, oracle, stablecoin, provider, relayer, rental_id, solvent):
    """[R seq 1 exhausting the budget, R seq 2] in one batch: the first pays the rest of the
    budget and ends R, the second settles within the end with payment 0."""
    over = BUDGET * 3_600 // PRICE_PER_GPU_HOUR + 1_000
    oracle.cover(rental_id, over + 60)  # both reports within the rental's bounds
    now = chain.time()
    reports = [oracle.usage(rental_id, 1, over, periodEnd=now - 10), oracle.usage(rental_id, 2, over + 50, periodEnd=now - 5)]
    tx = market.settleBatch([r.as_tuple() for r in reports], oracle.sign_batch(reports), {"from": relayer})
    # The first in the fast pass's UsageBatchSettled; the second, for the rental Ended by the
    # first, settles after the fast pass with its own UsageSettled.
    assert settled_reports(tx) == [(rental_id, 1, BUDGET), (rental_id, 2, 0)]
    assert event_args(tx.events["UsageSettled"]) == (rental_id, 2, 0)
    assert tx.events["RentalEnded"]["reason"] == BUDGET_EXHAUSTED
    r = market.getRental(rental_id)
    assert (r["status"], r["paid"], r["sequence"], r["endedAt"]) == (ENDED, BUDGET, 2, tx.timestamp)
    assert earned(market, provider, stablecoin) == credit(0, BUDGET)
    solvent()


def test_settleBatch_interleaved_providers_each_credited_exactly(
    market, oracle, stablecoin, provider, provider2, renter, renter2, agent, relayer, offer_id, solvent
):
    """Credits are summed per run of one offer inside a batch: [A, B, A, B] must still credit
    each provider exactly its own rentals."""
    from conftest import MIN_STAKE_PER_GPU, offer_terms, stake_for

    stake_for(market, stablecoin, provider2, gpus=1, extra=MIN_STAKE_PER_GPU)  # collateral for b1 and b2
    oid2 = market.createOffer(offer_terms(stablecoin, agent, gpuCount=1), {"from": provider2}).events["OfferCreated"]["offerId"]
    a1 = open_rental(market, stablecoin, renter, offer_id, BUDGET)
    b1 = open_rental(market, stablecoin, renter2, oid2, BUDGET)
    a2 = open_rental(market, stablecoin, renter2, offer_id, BUDGET)
    b2 = open_rental(market, stablecoin, renter, oid2, BUDGET)
    for rid, who in [(a1, provider), (b1, provider2), (a2, provider), (b2, provider2)]:
        market.startRental(rid, {"from": who})
    secs = {a1: 100, b1: 200, a2: 300, b2: 400}
    reports = [oracle.usage(rid, 1, s) for rid, s in secs.items()]
    market.settleBatch([r.as_tuple() for r in reports], oracle.sign_batch(reports), {"from": relayer})
    assert market.withdrawable(provider, stablecoin) == market.withdrawable(provider2, stablecoin) == 0
    market.claim([a1, b1, a2, b2], {"from": relayer})  # one claim for both providers' rentals
    assert market.withdrawable(provider, stablecoin) == credit(0, cost(100)) + credit(0, cost(300))
    assert market.withdrawable(provider2, stablecoin) == credit(0, cost(200)) + credit(0, cost(400))
    solvent()


def test_settleBatch_mixes_active_and_ended_rentals_of_one_provider(market, oracle, stablecoin, provider, renter, relayer, three_rentals, solvent):
    a, b, c = three_rentals
    chain.sleep(700)
    tx = market.endRental(a, {"from": renter})
    reports = [oracle.usage(a, 1, 500, periodEnd=tx.timestamp), oracle.usage(b, 1, 600), oracle.usage(c, 1, 700)]
    tx = market.settleBatch([r.as_tuple() for r in reports], oracle.sign_batch(reports), {"from": relayer})
    # b and c (Active) in UsageBatchSettled, then a's final report (Ended) in UsageSettled.
    assert settled_reports(tx) == [(b, 1, cost(600)), (c, 1, cost(700)), (a, 1, cost(500))]
    assert earned(market, provider, stablecoin) == sum(credit(0, cost(s)) for s in (500, 600, 700))
    solvent()


def test_settleBatch_skips_unknown_rental(market, oracle, stablecoin, provider, relayer, rental_id):
    reports = [oracle.usage(999, 1, 100), oracle.usage(rental_id, 1, 100)]
    tx = market.settleBatch([r.as_tuple() for r in reports], oracle.sign_batch(reports), {"from": relayer})
    assert event_args(tx.events["UsageReportSkipped"]) == (999, 1)
    assert earned(market, provider, stablecoin) == credit(0, cost(100))


@pytest.mark.parametrize("fee_bps", [0, 1, 333, 1_000])
def test_settle_fee_split_at_any_fee_rate(market, gov, oracle, stablecoin, renter, provider, treasury, relayer, offer_id, fee_bps, solvent):
    """Provider credit is paid - floor(paid * fee / 10000) on the cumulative amount, so many
    small settlements cannot round the fee away; the treasury gets exactly the rest."""
    from conftest import params_tuple

    market.setParams(params_tuple(treasury, protocolFeeBps=fee_bps), {"from": gov})
    rid = open_rental(market, stablecoin, renter, offer_id, BUDGET)
    market.startRental(rid, {"from": provider})
    for seq, secs in enumerate([7, 13, 101, 977, 5_003], start=1):
        oracle.settle(rid, seq, secs, relayer, energy=seq * 12_345_679)
    paid = market.getRental(rid)["paid"]
    assert paid == cost(5_003, 5 * 12_345_679)
    fee = paid * fee_bps // 10_000
    assert market.withdrawable(provider, stablecoin) == paid - fee
    market.endRental(rid, {"from": renter})
    tx = finalize_after_grace(market, rid, provider)
    assert tx.events["RentalFinalized"]["fee"] == fee
    assert market.withdrawable(treasury, stablecoin) == fee
    assert market.withdrawable(renter, stablecoin) == BUDGET - paid
    solvent()


# ------------------------------------------------------------------ report bounds (issue 7, item 7)


YEAR = 365 * 86_400


def test_RevertWhen_settle_active_rental_report_a_year_ahead_ten_seconds_after_start(market, oracle, relayer, rental_id):
    """The finding: ten seconds after start, a report with periodEnd a year ahead and a year of
    GPU-seconds drained a 1-GPU rental's budget. Both halves of it are refused now."""
    started = market.getRental(rental_id)["startedAt"]
    chain.sleep(started + 10 - chain.time())
    chain.mine()
    ahead = oracle.usage(rental_id, 1, YEAR, periodEnd=chain.time() + YEAR)
    with reverts_with("UsageSettlement_PeriodEndInFuture(uint256,uint64,uint256)", any_args=True):
        market.settle(ahead.as_tuple(), oracle.sign_usage(ahead), {"from": relayer})
    now = oracle.usage(rental_id, 1, YEAR, periodEnd=started + 10)
    with reverts_with("UsageSettlement_AvailableAboveBound(uint256,uint256,uint256)", rental_id, YEAR, 11):
        market.settle(now.as_tuple(), oracle.sign_usage(now), {"from": relayer})
    assert market.getRental(rental_id)["paid"] == 0


def test_RevertWhen_settle_energy_above_the_power_limit(market, oracle, relayer, rental_id):
    r = market.getRental(rental_id)
    limit = r["gpuCount"] * 101 * r["powerLimitW"] * 1_100  # 100 s elapsed, + 1 s
    report = oracle.usage(rental_id, 1, 100, energyMillijoules=limit + 1, periodEnd=r["startedAt"] + 100)
    chain.sleep(r["startedAt"] + 101 - chain.time())
    chain.mine()
    with reverts_with("UsageSettlement_EnergyAboveBound(uint256,uint256,uint256)", rental_id, limit + 1, limit):
        market.settle(report.as_tuple(), oracle.sign_usage(report), {"from": relayer})
    ok = report.but(energyMillijoules=limit)
    market.settle(ok.as_tuple(), oracle.sign_usage(ok), {"from": relayer})
    assert market.getRental(rental_id)["sequence"] == 1


def test_RevertWhen_settleBatch_more_than_256_reports(market, oracle, relayer, rental_id):
    reports = [oracle.usage(rental_id, i + 1, 0, periodEnd=0) for i in range(257)]
    with reverts_with("UsageSettlement_BatchTooLarge(uint256,uint256)", 257, 256):
        market.settleBatch([r.as_tuple() for r in reports], b"", {"from": relayer})
