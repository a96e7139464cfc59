"""Proof of GPU end to end over real HTTP: three real node servers (uvicorn subprocesses,
SQLite), a real anvil chain whose blocks are the beacons, and agents answering with the numpy
solver. One node lies about every verdict (fault injection): the quorum of 2 decides.

Six rentals run side by side from the same start block, one behaviour each: honest; the real
H100 trace replayed with no GPU behind it (it never answers); answers wrongly (``--cheat``); honest but its telemetry shows an idle GPU; too slow
(commits after the deadline); names another GPU than its telemetry lists.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

import httpx
import pytest

from oracle.agent.challenges import ChallengeResponder, GpuIdentity
from oracle.chain.anvil import anvil_env_ok
from oracle.node.testing import (
    AGENT_KEY,
    H100,
    chain_batches,
    challenge_network,
    shifted,
    trace_samples,
)
from oracle.proof.params import profile_for
from oracle.proof.solver import NumpySolver
from oracle.telemetry.batches import address_of
from oracle.telemetry.samples import Sample

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not anvil_env_ok(), reason="anvil not installed")]

HONEST, SILENT, CHEAT, IDLE, LATE, WRONG_GPU, TWO_GPUS = 1, 2, 3, 4, 5, 6, 7
RENTALS = (HONEST, SILENT, CHEAT, IDLE, LATE, WRONG_GPU, TWO_GPUS)
SECOND = replace(H100, index=1, uuid="GPU-5e1c0a3e-h100-second")
NODE_KEYS = ["c1" * 32, "c2" * 32, "c3" * 32]
DEV = profile_for("dev")


class SlowSolver(NumpySolver):
    """Computes the right answer, but only after the commit deadline has passed."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    def solve(self, *args, **kwargs):
        time.sleep(self.delay_s)
        return super().solve(*args, **kwargs)


def _telemetry(rental_id: int, start_ms: int, seconds: int, busy: bool) -> list[bytes]:
    if rental_id == SILENT:  # the real trace, replayed now: plausible telemetry, no GPU to answer with
        samples = [s for s in shifted(trace_samples(), start_ms + 1000 * seconds) if s.t_ms >= start_ms]
        return [b.to_wire_bytes() for b in chain_batches(AGENT_KEY, rental_id, samples, gpus=(H100,),
                                                         samples_per_batch=len(samples))]
    gpus = (H100, SECOND) if rental_id == TWO_GPUS else (H100,)
    samples = [Sample(g.index, start_ms + 1000 * i, 1000 * i * (600 if busy else 70), 600_000 if busy else 70_000,
                      100 if busy else 0, 60 if busy else 0, 40_000, 50) for i in range(seconds) for g in gpus]
    return [b.to_wire_bytes() for b in chain_batches(AGENT_KEY, rental_id, samples, gpus=gpus,
                                                     samples_per_batch=len(samples))]


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pog")
    start_ms = (time.time_ns() // 1_000_000 // 1000 + 10) * 1000  # no block before it counts (anvil's first ones)
    rentals = json.dumps([{"rental_id": r, "agent": address_of(AGENT_KEY), "gpu_count": 2 if r == TWO_GPUS else 1,
                           "region": "test",
                           "grid_intensity_g_per_kwh": 400, "start_ms": start_ms} for r in RENTALS])
    with challenge_network(tmp, rentals, NODE_KEYS, market="0x" + "42" * 20) as (chain, urls):
        time.sleep(max(1.0, start_ms / 1000 + 1 - time.time()))
        chain.set_next_timestamp(max(start_ms // 1000 + 1, int(time.time())))  # at or after the start, now
        chain.mine()      # the first block after the start: every rental's start challenge
        issued_s = int(chain.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
        yield chain, urls, issued_s


def _responder(urls, rental_id, **kwargs):
    return ChallengeResponder(urls, rental_id, AGENT_KEY, [GpuIdentity(0, H100.uuid, "1650123456789")],
                              poll_interval_s=0.1, **kwargs)


@pytest.fixture(scope="module")
def outcome(network):
    chain, urls, issued_s = network
    with httpx.Client(timeout=10) as client:
        for rental in RENTALS:
            for body in _telemetry(rental, issued_s * 1000 - 1000, 8, busy=rental != IDLE):
                for url in urls:
                    assert client.post(f"{url}/v1/rentals/{rental}/batches", content=body).status_code == 200
    wrong_gpu = [GpuIdentity(0, "GPU-00000000-some-other-card", "1")]
    responders = [
        _responder(urls, HONEST), _responder(urls, CHEAT, cheat=True), _responder(urls, IDLE),
        _responder(urls, LATE, solver_for=lambda gpu: SlowSolver(DEV.commit_deadline_ms / 1000 + 1.5)),
        ChallengeResponder(urls, WRONG_GPU, AGENT_KEY, wrong_gpu, poll_interval_s=0.1),
        # each GPU's solve takes 55 % of the deadline: in turn they would be late, side by side they are not
        ChallengeResponder(urls, TWO_GPUS, AGENT_KEY, [GpuIdentity(0, H100.uuid, "1"), GpuIdentity(1, SECOND.uuid, "2")],
                           solver_for=lambda gpu: SlowSolver(0.55 * DEV.commit_deadline_ms / 1000), poll_interval_s=0.1),
    ]
    for responder in responders:
        responder.start()
    try:
        deadline_s = issued_s + -(-DEV.commit_deadline_ms // 1000)
        time.sleep(1.0)
        chain.set_next_timestamp(deadline_s)  # the first block at or after the commit deadline: the cells
        chain.mine()
        summaries = {}
        with httpx.Client(timeout=10) as client:
            give_up = time.monotonic() + 90
            while time.monotonic() < give_up:
                summaries = {r: [client.get(f"{u}/v1/rentals/{r}/challenges").json() for u in urls] for r in RENTALS}
                due_ms = max(c["due_ms"] for per in summaries.values() for s in per for c in s["challenges"]) \
                    if all(s["challenges"] for per in summaries.values() for s in per) else None
                if (due_ms is not None and time.time() * 1000 > due_ms + 1000
                        and all(all(c["quorum"] for c in s["challenges"]) for per in summaries.values() for s in per)):
                    break
                time.sleep(0.3)
        return summaries, responders
    finally:
        for responder in responders:
            responder.close()


def _quorum(summaries, rental):
    return {s["challenges"][0]["quorum"] for s in summaries[rental]}


def test_an_honest_agent_passes_on_every_node_and_its_time_stays_paid(outcome):
    summaries, _ = outcome
    assert _quorum(summaries, HONEST) == {"passed"}
    for summary in summaries[HONEST]:
        assert (summary["passed"], summary["failed"], summary["unpaid"]) == (1, 0, [])
        assert summary["counted"] == {"passed": 1, "failed": 0}


def test_a_replayed_trace_never_answers_so_it_misses_and_its_gpu_is_unpaid_from_the_challenge(outcome):
    summaries, _ = outcome
    assert _quorum(summaries, SILENT) == {"missed"}
    for summary in summaries[SILENT]:
        assert summary["failed"] == 1 and summary["counted"] == {"passed": 0, "failed": 1}
        assert summary["unpaid"][0]["start_ms"] == summary["challenges"][0]["due_ms"]  # unpaid once decided


def test_a_cheating_agent_is_judged_wrong(outcome):
    summaries, _ = outcome
    assert _quorum(summaries, CHEAT) == {"wrong"}
    honest_nodes = [s for s in summaries[CHEAT] if s["challenges"][0]["verdict"] == "wrong"]
    assert len(honest_nodes) == 2 and "does not match its committed sketch" in honest_nodes[0]["challenges"][0]["detail"]


def test_a_forged_trace_with_no_load_during_the_challenge_fails(outcome):
    summaries, _ = outcome
    assert _quorum(summaries, IDLE) == {"no_load"}


def test_an_answer_after_the_deadline_fails_as_late(outcome):
    summaries, _ = outcome
    assert _quorum(summaries, LATE) <= {"late", "missed"} and _quorum(summaries, LATE)


def test_an_answer_naming_another_gpu_fails(outcome):
    summaries, _ = outcome
    assert _quorum(summaries, WRONG_GPU) == {"wrong_gpu"}


def test_one_lying_node_does_not_change_any_verdict(outcome):
    summaries, _ = outcome
    for rental in RENTALS:
        liar = summaries[rental][2]["challenges"][0]
        assert liar["verdict"] != liar["quorum"], rental  # it lied, and the quorum outvoted it
        assert len(_quorum(summaries, rental)) == 1


def test_a_multi_gpu_rental_answers_every_gpu_side_by_side_in_time(outcome):
    summaries, _ = outcome
    for summary in summaries[TWO_GPUS]:
        assert sorted(c["gpu_index"] for c in summary["challenges"]) == [0, 1]
        assert {c["quorum"] for c in summary["challenges"]} == {"passed"}
