"""The checks every end-to-end rental must pass, read independently from the chain."""

from __future__ import annotations

from typing import Any

from oracle.chain.settlements import get_settlements
from oracle.protocol import RentalStatus

# getRental tuple indices (contracts/types/DataTypes.sol, struct Rental)
STATUS, SEQUENCE, AVAILABLE, PAID, STARTED_AT, BUDGET, GPU_COUNT = 0, 1, 3, 5, 6, 9, 10
RENTER, ENDED_AT, FEE_BPS, PROVIDER, CLAIMED = 11, 13, 15, 16, 17


def check_rental_against_chain(reader: Any, summary: dict[str, Any], trace_seconds: float) -> None:
    rental_id = summary["rental_id"]
    rental = reader.rental(rental_id)
    assert rental[STATUS] == RentalStatus.FINALIZED
    provider, renter = rental[PROVIDER], rental[RENTER]
    assert (provider, renter) == (summary["provider"], summary["renter"])

    # What settled: the payments of UsageSettled (settle) and of the rental's entries of
    # UsageBatchSettled (settleBatch) add up to what left the escrow ...
    settled = get_settlements(reader.market, 0, rental_id=rental_id)
    assert len(settled) == summary["settled_reports"] >= 1
    # ... each sent by an oracle node's own key (the demo and the provider never settle) ...
    signers = reader.market.functions.signerSet().call()[2]
    senders = [reader.w3.eth.get_transaction(ev.tx_hash)["from"] for ev in settled]
    assert set(senders) <= set(signers), senders
    assert [entry["submitter"] for entry in summary["settlements"]] == senders
    assert [entry["sequence"] for entry in summary["settlements"]] == [ev.sequence for ev in settled]
    paid = sum(ev.payment for ev in settled)
    assert paid == rental[PAID] == summary["paid_from_escrow"] > 0
    (finalized,) = reader.events("RentalFinalized", rentalId=rental_id)
    fee, refund = finalized["args"]["fee"], finalized["args"]["refund"]
    assert finalized["args"]["paid"] == paid and not finalized["args"]["abandoned"]
    assert fee == paid * rental[FEE_BPS] // 10_000 == summary["protocol_fee"]

    # The provider's balance grew by exactly the settled amount (less the protocol fee) ...
    assert summary["provider_balance_after"] == reader.balance(provider)
    assert reader.balance(provider) - summary["provider_balance_before"] == paid - fee == summary["paid_to_provider"]
    # ... and the renter got the rest of the budget back.
    assert refund == rental[BUDGET] - paid == summary["refunded_to_renter"]
    assert summary["renter_balance_after"] == reader.balance(renter)
    assert reader.balance(renter) - summary["renter_balance_before"] == -paid
    withdrawn = {ev["args"]["account"]: ev["args"]["amount"] for ev in reader.events("Withdrawn")
                 if ev["args"]["account"] in (provider, renter)}
    assert withdrawn == {provider: paid - fee, renter: refund}

    # Reputation moved, from what settled.
    completed, abandoned, slashes, attested, _passed, _failed, fees_paid, delivered, abandoned_collateral, slashed = \
        reader.market.functions.reputationOf(provider).call()
    before = summary["provider_reputation_before"]
    assert completed == before["completed_rentals"] + 1
    assert fees_paid == before["fees_paid"] + fee and 0 < delivered - before["delivered_fees"] <= fee
    assert attested == before["attested_gpu_seconds"] + rental[AVAILABLE]
    score = reader.market.functions.reputationScore(provider).call()
    # docs/economics.md: 10000 x deliveredFees / (feesPaid + abandonedCollateral + slashed + prior)
    prior = reader.market.functions.params().call()[-1]
    assert score == 10_000 * delivered // (fees_paid + abandoned_collateral + slashed + prior)
    assert score == summary["provider_reputation_score_bps"] >= before["score_bps"]

    # The attested GPU time is the replayed trace's (1 Hz samples of it), at full uptime.
    assert summary["available_gpu_seconds"] == rental[AVAILABLE]
    assert abs(rental[AVAILABLE] - trace_seconds) <= 2
    # Uptime as the chain derives it (not stored): attested seconds over the rental's whole span,
    # start to end, which also holds the seconds before the first and after the last sample.
    uptime_bps = rental[AVAILABLE] * 10_000 // (rental[GPU_COUNT] * (rental[ENDED_AT] - rental[STARTED_AT]))
    assert uptime_bps == summary["uptime_bps"] >= 8_000
    assert rental[CLAIMED] == paid - fee  # every earning reached the provider's balance
    assert summary["busy_gpu_seconds"] < rental[AVAILABLE]
    assert summary["energy_millijoules"] > 0 and summary["carbon_milligrams"] > 0

    # The node's own report for the settled sequence says the same as the chain's calldata.
    node = summary["node_report"]
    assert node is not None and node["sequence"] == rental[SEQUENCE]
    for key in ("available_gpu_seconds", "busy_gpu_seconds", "energy_millijoules", "carbon_milligrams"):
        assert node[key] == summary[key], key
