"""Each cheating prover of issue 8, caught with the probability docs/protocol.md states.

Node-level variants (a late answer, an agent that never answers, a forged idle trace, one
lying node) run against real node servers in tests/oracle/node/test_challenges_http.py.
"""

from __future__ import annotations

import math

from oracle.proof import merkle
from oracle.proof.judge import Outcome, WindowSample, decide, quorum, window_responds
from oracle.proof.params import (
    DEV_SHAPE, PERFORMANCE, WorkShape, estimated_solve_ms, profile_for,
)
from oracle.proof.seeds import opening_cells
from oracle.proof.solver import NumpySolver
from oracle.proof.verify import verify_openings

from tests.oracle.proof.cheaters import PartialSolver, PrecomputedTableSolver, judge_solution

H100 = "NVIDIA H100 80GB HBM3"
UUID, SERIAL = "GPU-test-uuid", "1650123456789"


def _seed(label: str, i: int) -> bytes:
    return merkle.keccak(label.encode() + i.to_bytes(4, "big"))


def test_no_gpu_a_cpu_cannot_meet_the_h100_deadline_at_production_size():
    """Deadline math, not a timed test: the H100 shape needs prover_ops integer operations; even
    a dual-socket server at the theoretical int8 peak of AVX-512 VNNI (2 x 96 cores x 2.4 GHz x
    2 FMA units x 64 int8 MACs x 2 ops = 118 TOPS) needs longer than the deadline, and numpy
    (float64 BLAS, ~1e11 op/s on such a server) about a thousand times longer."""
    profile = profile_for(H100)
    generous_cpu_ops_per_s = 2 * 96 * 2.4e9 * 2 * 64 * 2
    cpu_ms = profile.shape.prover_ops / generous_cpu_ops_per_s * 1000
    assert cpu_ms > 2 * profile.commit_deadline_ms, (cpu_ms, profile.commit_deadline_ms)
    numpy_ms = profile.shape.prover_ops / 1e11 * 1000
    assert numpy_ms > 1000 * profile.commit_deadline_ms


def test_a_slower_gpu_class_answers_after_the_listed_models_deadline():
    """An A100 (published 624 dense int8 TOPS, 2 TB/s; 80 GB, so it holds the H100 table) solving
    the H100 challenge, at the same assumed efficiencies, misses the H100 deadline; so do an
    L40S and an RTX 4090 even before counting that their memory cannot hold the table."""
    h100 = profile_for(H100)
    for size in (h100.start, h100.periodic):
        for perf in PERFORMANCE:
            if perf.int8_dense_tops < 1000:
                slower_ms = estimated_solve_ms(size.shape, perf)
                assert slower_ms > size.commit_deadline_ms, (perf.model, slower_ms, size.commit_deadline_ms)
    late = decide(committed_at_ms=h100.commit_deadline_ms + 1, commit_deadline_ms=h100.commit_deadline_ms,
                  gpu_matches=True, opened_at_ms=None, open_deadline_ms=0, verification=None, telemetry=None)
    assert late[0] is Outcome.LATE


def test_a_smaller_card_cannot_hold_the_table_of_the_listed_model():
    for model, smaller in [(H100, "NVIDIA L40S"), ("NVIDIA H200", H100), (H100, "NVIDIA GeForce RTX 4090")]:
        from oracle.gpu_models import gpu_model
        assert profile_for(model).shape.table_bytes > gpu_model(smaller).memory_mib * (1 << 20)


def test_partial_computation_is_caught_with_the_stated_probability():
    """A prover that fakes a quarter of the rows escapes one challenge with probability
    (3/4)**k (k = opened cells): 10 % at k = 8. Over 120 challenges (fixed seeds, so the count is
    reproducible) the caught share stays within 3 standard deviations of 1 - (3/4)**k."""
    faked, trials, k = 0.25, 120, DEV_SHAPE.opened
    caught = 0
    for i in range(trials):
        seed = _seed("partial", i)
        solution = PartialSolver(faked_fraction=faked, rng_seed=i).solve(seed, DEV_SHAPE, UUID, SERIAL)
        if not judge_solution(solution, seed, DEV_SHAPE, beacon=_seed("beacon", i)).ok:
            caught += 1
    p = 1 - (1 - faked) ** k
    sigma = math.sqrt(p * (1 - p) / trials)
    assert abs(caught / trials - p) <= 3 * sigma, (caught, trials, p)


def test_faking_half_the_rows_is_caught_every_time_at_k_8():
    """(1/2)**8 = 0.4 % escape: all 40 fixed-seed attempts are caught."""
    for i in range(40):
        seed = _seed("half", i)
        solution = PartialSolver(faked_fraction=0.5, rng_seed=i).solve(seed, DEV_SHAPE, UUID, SERIAL)
        assert not judge_solution(solution, seed, DEV_SHAPE, beacon=_seed("b", i)).ok


def test_replaying_an_earlier_answer_is_rejected():
    earlier_seed, seed = _seed("replay", 1), _seed("replay", 2)
    earlier = NumpySolver().solve(earlier_seed, DEV_SHAPE, UUID, SERIAL)
    cells = opening_cells(seed, earlier.digest, b"\x33" * 32, DEV_SHAPE.opened, DEV_SHAPE.segments, DEV_SHAPE.rows)
    verdict = verify_openings(seed, DEV_SHAPE, earlier.top_root, cells, earlier.open(cells))
    assert not verdict.ok


def test_a_table_precomputed_before_the_seed_was_known_is_rejected():
    for i in range(20):
        seed = _seed("precomputed", i)
        solution = PrecomputedTableSolver(guessed_seed=_seed("guess", i)).solve(seed, DEV_SHAPE, UUID, SERIAL)
        assert not judge_solution(solution, seed, DEV_SHAPE).ok


def test_a_forged_trace_showing_no_load_during_the_challenge_is_a_failure():
    idle = [WindowSample(t, 70_000, 0) for t in range(1_000, 20_000, 1_000)]
    responds, why = window_responds(idle, 5_000, 12_000, 700_000)
    assert not responds and "utilization 0" in why
    busy = [WindowSample(t, 650_000, 100) for t in range(1_000, 20_000, 1_000)]
    assert window_responds(busy, 5_000, 12_000, 700_000)[0]
    assert not window_responds(busy, 30_000, 40_000, 700_000)[0]  # no samples at all in the window
    verdict = decide(committed_at_ms=10, commit_deadline_ms=20, gpu_matches=True, opened_at_ms=30,
                     open_deadline_ms=40, verification=_ok(), telemetry=(responds, why))
    assert verdict[0] is Outcome.NO_LOAD


def test_an_agent_that_never_answers_misses_the_challenge():
    assert decide(committed_at_ms=None, commit_deadline_ms=20, gpu_matches=None, opened_at_ms=None,
                  open_deadline_ms=40, verification=None, telemetry=None)[0] is Outcome.MISSED
    committed_never_opened = decide(committed_at_ms=10, commit_deadline_ms=20, gpu_matches=True,
                                    opened_at_ms=None, open_deadline_ms=40, verification=None, telemetry=None)
    assert committed_never_opened[0] is Outcome.MISSED


def test_one_node_lying_about_the_verdict_is_outvoted_by_the_quorum():
    assert quorum([Outcome.PASSED, Outcome.PASSED, Outcome.WRONG], threshold=2) is Outcome.PASSED
    assert quorum([Outcome.WRONG, Outcome.WRONG, Outcome.PASSED], threshold=2) is Outcome.WRONG
    assert quorum([Outcome.PASSED, Outcome.WRONG], threshold=2) is None


def _ok():
    from oracle.proof.verify import Verification
    return Verification(True, "ok", DEV_SHAPE.opened)


def test_the_verifier_work_stays_within_one_second_of_one_core_at_every_production_size():
    """k s (1 + l) n^2 multiply-adds: 1.5 G for every model (the table size does not enter).
    tools/bench_challenge.py measures the seconds; here the bound on the count."""
    for perf in PERFORMANCE:
        for size in (profile_for(perf.model).start, profile_for(perf.model).periodic):
            shape: WorkShape = size.shape
            assert shape.verifier_macs <= 2_000_000_000
