"""The settlement loop asks every Ended rental for its end-challenge fault each round, not only
the rentals due for a report (an end challenge is decided after the rental's last batch), until
that fault is decided; a finalized rental leaves the set. The aggregator is scripted: what it
would find at the nodes and on chain is the test's input."""

from __future__ import annotations

from oracle.attestation.reports import END_CHALLENGE_FAULT_ID
from oracle.node.quorum import Outcome
from oracle.node.settlement_loop import SettlementLoop


class ScriptedAggregator:
    """Answers ``submit_end_fault`` from a script: rental -> outcome statuses, one per call."""

    def __init__(self, script: dict[int, list[str]]) -> None:
        self.script = script
        self.asked: list[int] = []
        self.submit_delay_s = 0.0
        self.stop = None

    def submit_end_fault(self, rental_id: int) -> list[Outcome]:
        self.asked.append(rental_id)
        status = self.script[rental_id].pop(0) if self.script[rental_id] else ""
        return [Outcome(rental_id, status, fault_id=END_CHALLENGE_FAULT_ID)] if status else []


def test_ended_rentals_are_asked_every_round_until_their_end_fault_is_decided():
    # 7: not decided for two rounds, then slashed; 8: its end challenge passed (no fault, ever)
    aggregator = ScriptedAggregator({7: ["", "", "slashed"], 8: []})
    ended = {7, 8}
    loop = SettlementLoop(aggregator, lambda: [], ended_rentals=lambda: sorted(ended))
    for _ in range(3):
        loop.run_once()
    assert aggregator.asked == [7, 8, 7, 8, 7, 8]
    loop.run_once()
    assert aggregator.asked[-1:] == [8]  # 7 is decided: never asked again
    assert [o.status for o in loop.outcomes] == ["slashed"]
    ended.discard(8)  # finalized
    before = len(aggregator.asked)
    loop.run_once()
    assert len(aggregator.asked) == before


def test_a_loop_that_does_not_slash_never_asks():
    aggregator = ScriptedAggregator({7: ["slashed"]})
    loop = SettlementLoop(aggregator, lambda: [], slash_faults=False, ended_rentals=lambda: [7])
    assert loop.run_once() == [] and aggregator.asked == []
