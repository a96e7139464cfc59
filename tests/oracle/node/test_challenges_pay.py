"""A failed challenge in the usage report, over real HTTP: the node's report for a rental whose
agent never answered its challenge counts it failed, leaves the GPU's time from the challenge on
unpaid, and lists a CHALLENGE_FAILED fault; the same node's report for an honest rental next to
it counts the pass and pays every second. One real node server, a real anvil for the beacons."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from oracle.agent.challenges import ChallengeResponder, GpuIdentity
from oracle.chain.anvil import Anvil, anvil_env_ok, free_port
from oracle.metering.faults import FaultKind
from oracle.node.testing import AGENT_KEY, H100, NodeProcess, chain_batches
from oracle.proof.params import profile_for
from oracle.telemetry.batches import address_of
from oracle.telemetry.samples import Sample

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not anvil_env_ok(), reason="anvil not installed")]

SILENT, HONEST = 21, 22
DEV = profile_for("dev")


def _batches(rental_id: int, start_ms: int, end_ms: int) -> list[bytes]:
    samples = [Sample(0, t, (t - start_ms) * 600, 600_000, 100, 60, 40_000, 50)
               for t in range(start_ms, end_ms, 1000)]
    return [b.to_wire_bytes() for b in chain_batches(AGENT_KEY, rental_id, samples, gpus=(H100,),
                                                     samples_per_batch=10)]


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pog-pay")
    start_ms = (time.time_ns() // 1_000_000 // 1000 + 8) * 1000
    rentals = json.dumps([{"rental_id": r, "agent": address_of(AGENT_KEY), "gpu_count": 1, "region": "test",
                           "grid_intensity_g_per_kwh": 400, "start_ms": start_ms} for r in (SILENT, HONEST)])
    with Anvil() as chain:
        env = {"GPURENT_NODE_DEV_MODE": "true", "GPURENT_NODE_PRIVATE_KEY": "c1" * 32,
               "GPURENT_NODE_CHAIN_ID": "31337", "GPURENT_NODE_MARKET_ADDRESS": "0x" + "42" * 20,
               "GPURENT_NODE_DB_PATH": str(tmp / "node.sqlite3"), "GPURENT_NODE_RENTALS": rentals,
               "GPURENT_NODE_CHALLENGES": "dev", "GPURENT_NODE_BEACON_RPC_URL": chain.url,
               "GPURENT_NODE_CHALLENGE_CHECK_TELEMETRY": "false", "GPURENT_NODE_CHALLENGE_POLL_INTERVAL_S": "0.2"}
        with NodeProcess(env, port=free_port()).start(timeout_s=90) as node:
            time.sleep(max(1.0, start_ms / 1000 - time.time()))
            chain.set_next_timestamp(max(start_ms // 1000 + 1, int(time.time())))  # after the start, now
            chain.mine()  # the first block after the start second: both rentals' start challenges
            issued_ms = int(chain.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16) * 1000
            responder = ChallengeResponder([node.url], HONEST, AGENT_KEY, [GpuIdentity(0, H100.uuid, "1")],
                                           poll_interval_s=0.2).start()
            try:
                chain.set_next_timestamp(issued_ms // 1000 + DEV.periodic.commit_deadline_ms // 1000 + 1)
                time.sleep(DEV.periodic.commit_deadline_ms / 1000 + 1.5)
                chain.mine()  # the block after the commit deadline: the cells to open
                due_ms = issued_ms + DEV.due_after_issue_ms
                time.sleep(max(0.0, (due_ms + 8000) / 1000 - time.time()))  # 8 s unpaid after the due time
            finally:
                responder.close()
            end_ms = time.time_ns() // 1_000_000 - 500
            out = {}
            with httpx.Client(base_url=node.url, timeout=30) as client:
                for rental in (SILENT, HONEST):
                    for body in _batches(rental, start_ms, end_ms):
                        assert client.post(f"/v1/rentals/{rental}/batches", content=body).status_code == 200
                    out[rental] = {"report": client.get(f"/v1/rentals/{rental}/report").json(),
                                   "faults": client.get(f"/v1/rentals/{rental}/faults").json(),
                                   "challenges": client.get(f"/v1/rentals/{rental}/challenges").json()}
            out["issued_ms"], out["start_ms"], out["end_ms"] = issued_ms, start_ms, end_ms
            yield out


def test_a_missed_challenge_is_counted_failed_in_the_usage_report_and_its_time_is_unpaid(reports):
    silent, honest = reports[SILENT]["report"]["report"], reports[HONEST]["report"]["report"]
    assert (reports[SILENT]["challenges"]["passed"], reports[SILENT]["challenges"]["failed"]) == (0, 1)
    assert (reports[HONEST]["challenges"]["passed"], reports[HONEST]["challenges"]["failed"]) == (1, 0)
    if "challenges_failed" in silent:  # UsageReport carries the counts once it has the fields (issue 8/SPEC)
        assert (silent["challenges_passed"], silent["challenges_failed"]) == (0, 1)
        assert (honest["challenges_passed"], honest["challenges_failed"]) == (1, 0)
    paid_until_decided_s = (reports["issued_ms"] + DEV.due_after_issue_ms - reports["start_ms"]) // 1000
    assert silent["available_gpu_seconds"] <= paid_until_decided_s + 1  # unpaid from its due time on
    assert honest["available_gpu_seconds"] >= (reports["end_ms"] - reports["start_ms"]) // 1000 - 2
    assert honest["available_gpu_seconds"] - silent["available_gpu_seconds"] >= 6  # the 8 s after the due time
    assert silent["energy_millijoules"] < honest["energy_millijoules"]


def test_a_missed_challenge_is_a_challenge_failed_fault_the_nodes_sign(reports):
    faults = reports[SILENT]["faults"]["faults"]
    kinds = [f["signed"]["report"]["kind"] for f in faults if "signed" in f]
    assert int(FaultKind.CHALLENGE_FAILED) in kinds
    assert all(f["signed"]["report"]["kind"] != int(FaultKind.CHALLENGE_FAILED)
               for f in reports[HONEST]["faults"]["faults"] if "signed" in f)
