"""Property tests (hypothesis) of the settlement arithmetic against docs/protocol.md: for any
prices, budget and sequence of cumulative reports, what settles is min(cost(last), budget)
computed by the spec's formula, the provider's credit is paid - fee(paid), and after
finalization provider + treasury + renter receive exactly the deposit.

Each example opens its own rental, so examples need no chain revert between them."""

from brownie.test import given
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from conftest import finalize_after_grace, MJ_PER_KWH, PARAMS, fee_of, offer_terms, open_rental

FEE_BPS = PARAMS["protocolFeeBps"]


def spec_cost(available, energy, price_hour, price_kwh):
    return available * price_hour // 3_600 + energy * price_kwh // MJ_PER_KWH


steps = st.lists(
    st.tuples(st.integers(0, 50_000), st.integers(0, 5 * MJ_PER_KWH)), min_size=1, max_size=6
)


# data_too_large: a list of up to six steps overruns hypothesis's example buffer now and then; that
# is about generation size, not about the property.
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])
@given(
    price_hour=st.integers(1, 10**9),
    price_kwh=st.integers(0, 10**9),
    budget=st.integers(1, 10**11),
    increments=steps,
)
def test_settle_pays_spec_cost_capped_by_budget_and_conserves_deposit(
    market, oracle, stablecoin, provider, renter, treasury, relayer, agent, offer_id, price_hour, price_kwh, budget, increments
):
    market.updateOffer(offer_id, offer_terms(stablecoin, agent, pricePerGpuHour=price_hour, pricePerKwh=price_kwh), {"from": provider})
    rid = open_rental(market, stablecoin, renter, offer_id, budget)
    market.startRental(rid, {"from": provider})
    provider_before = market.withdrawable(provider, stablecoin)
    renter_before = market.withdrawable(renter, stablecoin)
    treasury_before = market.withdrawable(treasury, stablecoin)

    available = energy = 0
    paid = 0
    for seq, (d_available, d_energy) in enumerate(increments, start=1):
        if market.getRental(rid)["status"] != 2:
            break
        available += d_available
        energy += d_energy
        tx = oracle.settle(rid, seq, available, relayer, energy=energy)
        expected_paid = min(max(paid, spec_cost(available, energy, price_hour, price_kwh)), budget)
        assert tx.events["UsageSettled"]["payment"] == expected_paid - paid
        paid = expected_paid
        assert market.getRental(rid)["paid"] == paid
        assert market.withdrawable(provider, stablecoin) - provider_before == paid - fee_of(paid, FEE_BPS)

    if market.getRental(rid)["status"] == 2:
        market.endRental(rid, {"from": renter})
    finalize_after_grace(market, rid, provider)
    got = (
        market.withdrawable(provider, stablecoin) - provider_before,
        market.withdrawable(treasury, stablecoin) - treasury_before,
        market.withdrawable(renter, stablecoin) - renter_before,
    )
    assert got == (paid - fee_of(paid, FEE_BPS), fee_of(paid, FEE_BPS), budget - paid)
    assert sum(got) == budget
