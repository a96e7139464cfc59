"""The end challenge over real HTTP: three node servers (one lying about every verdict), anvil's
blocks as beacons, agents answering with the numpy solver after their rentals ended.

Both rentals ended before the nodes started, so the first block the nodes see issues each one's
end challenge (start-sized). The honest agent's ``drain(rental_ended=True)`` returns only once
it has answered it on every node; the cheating agent's answer fails, and every node then signs
the same CHALLENGE_FAILED fault report at ``END_CHALLENGE_FAULT_ID``, observed at the end.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from oracle.agent.challenges import ChallengeResponder, GpuIdentity
from oracle.attestation.eip712 import FaultReport, fault_report_digest
from oracle.attestation.reports import END_CHALLENGE_FAULT_ID
from oracle.attestation.signing import recover_signer
from oracle.chain.anvil import anvil_env_ok
from oracle.node.quorum import report_from_fields
from oracle.node.testing import AGENT_KEY, H100, challenge_network
from oracle.proof.params import END_CHALLENGE_INDEX, profile_for
from oracle.telemetry.batches import address_of

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not anvil_env_ok(), reason="anvil not installed")]

HONEST, CHEAT = 11, 12
NODE_KEYS = ["d1" * 32, "d2" * 32, "d3" * 32]
MARKET = "0x" + "42" * 20
DEV = profile_for("dev")


@pytest.fixture(scope="module")
def ended(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("end")
    now_s = int(time.time())
    end_s = now_s - 50
    rentals = json.dumps([{"rental_id": r, "agent": address_of(AGENT_KEY), "gpu_count": 1, "region": "test",
                           "grid_intensity_g_per_kwh": 400, "start_ms": (now_s - 100) * 1000,
                           "end_ms": end_s * 1000 + 999} for r in (HONEST, CHEAT)])
    with challenge_network(tmp, rentals, NODE_KEYS, market=MARKET) as (chain, urls):
        chain.mine()  # a block after end + delay: both end challenges
        yield chain, urls, end_s


def _responder(urls, rental_id, **kwargs):
    return ChallengeResponder(urls, rental_id, AGENT_KEY, [GpuIdentity(0, H100.uuid, "1")], poll_interval_s=0.1,
                              **kwargs)


def _end_challenge(client, url, rental_id):
    listed = client.get(f"{url}/v1/challenges", params={"rental_id": rental_id}).json()
    return listed["end_challenge"], [c for c in listed["challenges"] if c["index"] == END_CHALLENGE_INDEX]


@pytest.fixture(scope="module")
def answered(ended):
    chain, urls, end_s = ended
    with httpx.Client(timeout=10) as client:
        give_up = time.monotonic() + 30
        while not all(_end_challenge(client, u, r)[0] == "issued" for u in urls for r in (HONEST, CHEAT)):
            assert time.monotonic() < give_up, "the nodes did not issue the end challenges"
            time.sleep(0.2)
        (challenge,) = _end_challenge(client, urls[0], HONEST)[1]
    honest, cheat = _responder(urls, HONEST), _responder(urls, CHEAT, cheat=True)
    drained: dict[int, bool] = {}
    threads = [threading.Thread(target=lambda r=r, rid=rid: drained.__setitem__(rid, r.drain(60, rental_ended=True)))
               for r, rid in ((honest, HONEST), (cheat, CHEAT))]
    for thread in threads:
        thread.start()
    time.sleep(2.0)  # both commit (a numpy solve at the dev size)
    assert not drained, "drained before the cells could be opened"
    chain.set_next_timestamp(challenge["commit_deadline_ms"] // 1000 + 1)  # the block that draws the cells
    chain.mine()
    for thread in threads:
        thread.join(timeout=90)
    with httpx.Client(timeout=10) as client:
        give_up = time.monotonic() + 30
        while True:
            summaries = {r: [client.get(f"{u}/v1/rentals/{r}/challenges").json() for u in urls] for r in (HONEST, CHEAT)}
            if all(s["end_challenge"]["quorum"] for per in summaries.values() for s in per):
                break
            assert time.monotonic() < give_up, summaries
            time.sleep(0.3)
    honest.close()
    cheat.close()
    return urls, end_s, drained, summaries, challenge


def test_the_end_challenge_is_start_sized_and_issued_after_the_end(answered):
    _, end_s, _, _, challenge = answered
    assert challenge["issued_at_ms"] >= (end_s + DEV.end_delay_s) * 1000
    assert DEV.size(challenge["index"]) == DEV.start


def test_the_agent_drains_only_once_its_end_challenge_is_answered(answered):
    _, _, drained, summaries, _ = answered
    assert drained == {HONEST: True, CHEAT: True}
    for summary in summaries[HONEST]:
        assert summary["end_challenge"] == {"status": "issued", "quorum": "passed", "gpu_index": None}
        assert summary["challenges"] == [] and summary["counted"] == {"passed": 0, "failed": 0}  # never in a report


def test_a_failed_end_challenge_is_one_fault_every_node_signs_alike(answered):
    urls, end_s, _, summaries, _ = answered
    for summary in summaries[CHEAT]:
        assert summary["end_challenge"] == {"status": "issued", "quorum": "wrong", "gpu_index": 0}
    signed = []
    with httpx.Client(timeout=10) as client:
        for url in urls:
            page = client.get(f"{url}/v1/rentals/{CHEAT}/faults",
                              params={"from_id": END_CHALLENGE_FAULT_ID, "limit": 1}).json()
            (fault,) = page["faults"]
            signed.append(fault["signed"])
            honest_page = client.get(f"{url}/v1/rentals/{HONEST}/faults",
                                     params={"from_id": END_CHALLENGE_FAULT_ID, "limit": 1}).json()
            assert honest_page["faults"] == []
    reports = [report_from_fields(FaultReport, s["report"]) for s in signed]
    assert len(set(reports)) == 1  # the liar's own verdict is outvoted: it signs the quorum's fault too
    report = reports[0]
    assert (report.fault_id, report.kind, report.observed_at) == (END_CHALLENGE_FAULT_ID, 5, end_s)
    digest = fault_report_digest(report, 31337, MARKET)
    signers = {recover_signer(digest, bytes.fromhex(s["signature"][2:])) for s in signed}
    assert signers == {address_of(bytes.fromhex(k)) for k in NODE_KEYS}
