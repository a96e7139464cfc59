"""Issue 9, incremental metering on the node: a report meters only the batches since the last
checkpoint, survives a restart through SQLite checkpoints, and a signed report is served from
storage. Issue 8: the ChallengeLedger hook takes failed-challenge periods out of the report."""

from __future__ import annotations

import dataclasses

import pytest

from oracle.metering import DEFAULT_POLICY, feed, new_state, totals as totals_of
from oracle.metering.challenges import ChallengeOutcomes, NoChallenges, merge_intervals
from oracle.node.rentals import meter_terms
from oracle.node.storage import CHECKPOINT_KEEP_EVERY, NodeStorage
from oracle.node.testing import H100
from oracle.traces import TRACE_A

from metering_node import RENTAL, ingest, make_node, one_hz, rental, with_power

pytestmark = pytest.mark.skipif(not TRACE_A.is_file(), reason="real H100 trace not present")


@pytest.fixture(scope="module")
def real():
    return one_hz()


def spy_batches(node) -> list[tuple[int, int]]:
    """Record every (start, end) range of batches the node reads back for metering."""
    ranges: list[tuple[int, int]] = []
    original = node.storage.iter_batch_values  # the decoded stored batches metering reads

    def iter_batch_values(rental_id, start, end):
        ranges.append((start, end))
        return original(rental_id, start, end)

    node.storage.iter_batch_values = iter_batch_values
    return ranges


def test_a_report_meters_only_the_batches_since_the_previous_one(tmp_path, real):
    node = make_node(tmp_path, rental(real[0].t_ms), real[-1].t_ms + 1000)
    total = ingest(node, real, per_batch=5)
    ranges = spy_batches(node)
    node.usage_report(RENTAL, 4)
    node.usage_report(RENTAL, 9)
    node.usage_report(RENTAL, total)
    assert ranges == [(0, 4), (4, 9), (9, total)]


def test_a_signed_report_is_served_from_storage_without_metering(tmp_path, real):
    node = make_node(tmp_path, rental(real[0].t_ms), real[-1].t_ms + 1000)
    total = ingest(node, real, per_batch=5)
    first = node.usage_report(RENTAL, total)
    ranges = spy_batches(node)
    again = node.usage_report(RENTAL, total)
    assert ranges == []
    assert (again.digest, again.signature, again.newly_signed) == (first.digest, first.signature, False)


def test_a_restarted_node_resumes_from_its_sqlite_checkpoint(tmp_path, real):
    db = tmp_path / "node.sqlite3"
    node = make_node(tmp_path, rental(real[0].t_ms), real[-1].t_ms + 1000, storage=NodeStorage(db))
    total = ingest(node, real, per_batch=5)
    node.usage_report(RENTAL, 10)
    node.storage.close()
    restarted = make_node(tmp_path, rental(real[0].t_ms), real[-1].t_ms + 1000, storage=NodeStorage(db))
    ranges = spy_batches(restarted)
    _, _, totals, _ = restarted.meter(RENTAL, total)
    assert ranges == [(10, total)]
    terms = meter_terms(rental(real[0].t_ms))
    assert totals == totals_of(feed(new_state([H100], terms), terms, DEFAULT_POLICY, real), terms)


def test_an_old_unrecorded_sequence_replays_from_the_nearest_checkpoint_below(tmp_path, real):
    node = make_node(tmp_path, rental(real[0].t_ms), real[-1].t_ms + 1000)
    total = ingest(node, real, per_batch=1)  # 86 batches
    for sequence in range(1, total + 1):
        node.meter(RENTAL, sequence)
    node.metering.forget_cached()  # only the checkpoints in SQLite remain
    ranges = spy_batches(node)
    _, _, totals, _ = node.meter(RENTAL, CHECKPOINT_KEEP_EVERY + 5)
    assert ranges == [(CHECKPOINT_KEEP_EVERY, CHECKPOINT_KEEP_EVERY + 5)]
    terms = meter_terms(rental(real[0].t_ms))
    covered = real[:CHECKPOINT_KEEP_EVERY + 5]
    assert totals == totals_of(feed(new_state([H100], terms), terms, DEFAULT_POLICY, covered), terms)


def test_checkpoints_are_pruned_to_the_newest_two_and_every_keep_every_th(tmp_path, real):
    node = make_node(tmp_path, rental(real[0].t_ms), real[-1].t_ms + 1000)
    total = ingest(node, real, per_batch=1)
    for sequence in range(1, total + 1):
        node.meter(RENTAL, sequence)
    rows = node.storage._conn.execute(
        "SELECT sequence FROM meter_checkpoints WHERE rental_id=? ORDER BY sequence", (str(RENTAL),)).fetchall()
    assert [r[0] for r in rows] == [CHECKPOINT_KEEP_EVERY, total - 1, total]


# --- the proof-of-GPU hook -----------------------------------------------------------------------

class FailedChallengeLedger:
    """Fault injection: a ledger whose challenges judged so far left these spans unpaid."""

    def __init__(self, passed, failed, spans, gpu_spans=(), faults=()):
        self.passed, self.failed, self.spans, self.gpu_spans = passed, failed, spans, gpu_spans
        self.challenge_faults = list(faults)
        self.asked = []

    def outcomes(self, rental_id, up_to_ms):
        self.asked.append((rental_id, up_to_ms))
        return ChallengeOutcomes(self.passed, self.failed, tuple(self.spans), tuple(self.gpu_spans))

    def faults(self, rental_id, up_to_ms):
        return [f for f in self.challenge_faults if f.end_ms <= up_to_ms]


def test_a_failed_challenges_period_is_unpaid_and_the_counts_reach_the_report(tmp_path, real):
    t0 = real[0].t_ms
    ledger = FailedChallengeLedger(3, 1, [(t0 + 20_000, t0 + 40_000), (t0 + 30_000, t0 + 35_000)])
    node = make_node(tmp_path, rental(t0), real[-1].t_ms + 1000, challenges=ledger)
    honest = make_node(tmp_path / "b", rental(t0), real[-1].t_ms + 1000)
    for n in (node, honest):
        ingest(n, real, per_batch=10)
    paid = honest.meter(RENTAL)[2]
    _, _, unpaid, _ = node.meter(RENTAL)
    unpaid_energy = sum(b.energy_mj - a.energy_mj for a, b in zip(real, real[1:])
                        if t0 + 20_000 <= b.t_ms < t0 + 40_000)
    assert paid.available_gpu_milliseconds - unpaid.available_gpu_milliseconds == 20_000  # overlap once
    assert paid.energy_millijoules - unpaid.energy_millijoules == unpaid_energy
    assert (unpaid.challenges_passed, unpaid.challenges_failed) == (3, 1)
    assert unpaid.carbon_milligrams < paid.carbon_milligrams
    assert ledger.asked[-1] == (RENTAL, unpaid.period_end_ms)


def test_an_unpaid_span_is_metered_from_its_own_batches_not_the_whole_rental(tmp_path, real):
    t0 = real[0].t_ms
    ledger = FailedChallengeLedger(0, 1, [(t0 + 60_000, t0 + 70_000)])
    node = make_node(tmp_path, rental(t0), real[-1].t_ms + 1000, challenges=ledger)
    total = ingest(node, real, per_batch=10)
    node.meter(RENTAL, total - 1)
    ranges = spy_batches(node)
    node.meter(RENTAL, total)
    assert ranges[0] == (total - 1, total)
    assert all(end - start <= 3 for start, end in ranges[1:])  # the span's batches, not 0..total


def test_no_challenges_ledger_changes_nothing(tmp_path, real):
    assert NoChallenges().outcomes(RENTAL, 10**15) == ChallengeOutcomes()
    node = make_node(tmp_path, rental(real[0].t_ms), real[-1].t_ms + 1000)
    ingest(node, real)
    totals = node.meter(RENTAL)[2]
    assert (totals.challenges_passed, totals.challenges_failed) == (0, 0)
    assert totals.available_gpu_seconds == 85


def test_merge_intervals_unions_and_clips():
    assert merge_intervals([(5, 10), (0, 3), (8, 20), (30, 40)], 2, 34) == [(2, 3), (5, 20), (30, 35)]
    assert merge_intervals([(0, 1)], 5, 10) == []


def test_a_gpu_that_failed_its_challenge_is_unpaid_alone(tmp_path, real):
    """Per-GPU spans (the proof-of-GPU ledger's): the other GPU of the rental stays paid."""
    from oracle.telemetry.samples import GpuInfo

    t0 = real[0].t_ms
    gpus = (H100, GpuInfo(1, "GPU-second", H100.name, H100.power_limit_mw))
    two = sorted([*real, *(dataclasses.replace(s, gpu=1, power_mw=s.power_mw + 1) for s in real)],
                 key=lambda s: (s.t_ms, s.gpu))
    ledger = FailedChallengeLedger(1, 1, [], gpu_spans=[(1, t0 + 20_000, t0 + 40_000)])
    node = make_node(tmp_path, rental(t0, gpu_count=2), real[-1].t_ms + 1000, challenges=ledger)
    honest = make_node(tmp_path / "b", rental(t0, gpu_count=2), real[-1].t_ms + 1000)
    for n in (node, honest):
        ingest(n, two, gpus=gpus, per_batch=20)
    paid, unpaid = honest.meter(RENTAL)[2], node.meter(RENTAL)[2]
    assert paid.available_gpu_milliseconds - unpaid.available_gpu_milliseconds == 20_000  # one GPU's 20 s
    gpu1_energy = sum(b.energy_mj - a.energy_mj for a, b in zip(real, real[1:]) if t0 + 20_000 <= b.t_ms < t0 + 40_000)
    assert paid.energy_millijoules - unpaid.energy_millijoules == gpu1_energy


def test_challenge_failed_faults_are_filed_among_metering_faults_by_end_time_with_stable_ids(tmp_path, real):
    from oracle.metering import Fault, FaultKind

    t0 = real[0].t_ms
    hot = with_power(real, [800_000 if t0 + 50_000 <= s.t_ms < t0 + 55_000 else s.power_mw for s in real])
    failed = Fault(FaultKind.CHALLENGE_FAILED, t0 + 10_000, t0 + 30_000, "gpu 0: challenge x failed", 0)
    node = make_node(tmp_path, rental(t0), real[-1].t_ms + 1000,
                     challenges=FailedChallengeLedger(0, 1, [], faults=[failed]))
    ingest(node, hot, per_batch=10)
    early = node.meter(RENTAL, 4)[2]   # period end before t0+50 s: only the challenge fault
    assert [f.kind for f in early.faults] == [FaultKind.CHALLENGE_FAILED]
    late = node.meter(RENTAL)[2]
    assert [f.kind for f in late.faults] == [FaultKind.CHALLENGE_FAILED, FaultKind.COUNTER_PHYSICS]
    assert late.fault_flags == (1 << FaultKind.CHALLENGE_FAILED) | (1 << FaultKind.COUNTER_PHYSICS)
    reports = node.fault_reports(RENTAL)
    assert [(o.fault_id, o.signed.report.kind) for o in reports] == [(0, 5), (1, 3)]
