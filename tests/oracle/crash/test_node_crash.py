"""SIGKILL between recording a report and signing it: the restarted node signs the same bytes,
and refuses to sign a different report for the same (rental, sequence).

The kill is injected by the node itself (``GPURENT_NODE_FAULT=kill_after_record``, dev mode
only): ``os.kill(os.getpid(), SIGKILL)`` right after the report's transaction commits.
"""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from oracle.attestation.eip712 import UsageReport
from oracle.attestation.signing import recover_signer
from oracle.node.attestor import report_bytes, report_from_bytes
from oracle.node.storage import NodeStorage
from oracle.node.testing import (
    AGENT_KEY, NODE_KEY, TRACE_A, NodeProcess, chain_batches, dev_node_env, rental_env, shifted, trace_samples,
)
from oracle.telemetry.batches import address_of

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not TRACE_A.is_file(), reason="shared H100 trace not present")]

RENTAL = 21
MARKET = "0x" + "42" * 20


def node_env(db_path, start_ms, grid=400, fault=None) -> dict:
    return dev_node_env(db_path, rental_env(RENTAL, address_of(AGENT_KEY), start_ms, grid), market=MARKET, fault=fault)


def test_node_killed_between_record_and_sign_never_signs_a_conflicting_report(tmp_path):
    db_path = tmp_path / "node.sqlite3"
    samples = shifted(trace_samples()[:400], time.time_ns() // 1_000_000 - 1000)
    batches = chain_batches(AGENT_KEY, RENTAL, samples, samples_per_batch=50)
    sequence = len(batches)

    # 1. A node that dies right after committing the report, before signing it.
    doomed = NodeProcess(node_env(db_path, samples[0].t_ms, fault="kill_after_record")).start()
    try:
        with httpx.Client(base_url=doomed.url, timeout=10) as client:
            for batch in batches:
                assert client.post(f"/v1/rentals/{RENTAL}/batches", content=batch.to_wire_bytes()).status_code == 200
            with pytest.raises(httpx.TransportError):
                client.get(f"/v1/rentals/{RENTAL}/report", params={"sequence": sequence})
        assert doomed.wait() == -signal.SIGKILL
    finally:
        doomed.stop()

    # The report is on disk, unsigned: it was recorded before any signature existed.
    storage = NodeStorage(db_path)
    recorded = storage.get_report("usage", RENTAL, sequence)
    storage.close()
    assert recorded is not None and recorded.signature is None

    # 2. Restarted on the same file: it signs exactly the recorded bytes.
    with NodeProcess(node_env(db_path, samples[0].t_ms)) as node, httpx.Client(base_url=node.url, timeout=10) as client:
        response = client.get(f"/v1/rentals/{RENTAL}/report", params={"sequence": sequence})
        assert response.status_code == 200, response.text
        signed = response.json()
        assert signed["digest"] == "0x" + recorded.digest.hex()
        assert report_bytes(report_from_bytes(UsageReport, recorded.body)) == recorded.body
        assert report_bytes(UsageReport(**{k: (bytes.fromhex(v[2:]) if isinstance(v, str) else v)
                                           for k, v in signed["report"].items()})) == recorded.body
        assert recover_signer(recorded.digest, bytes.fromhex(signed["signature"][2:])) == address_of(NODE_KEY)

    # 3. Restarted with a view that meters a different report for the same sequence
    #    (another grid intensity): it serves the recorded report and its one signature from
    #    storage, never a second report for the sequence.
    with NodeProcess(node_env(db_path, samples[0].t_ms, grid=401)) as node, \
            httpx.Client(base_url=node.url, timeout=10) as client:
        served = client.get(f"/v1/rentals/{RENTAL}/report", params={"sequence": sequence})
        assert served.status_code == 200, served.text
        assert (served.json()["digest"], served.json()["signature"]) == (signed["digest"], signed["signature"])
        other = client.post("/v1/batch-signatures", json={"reports": [
            {"rental_id": RENTAL, "sequence": sequence, "digest": "0x" + "cd" * 32}]})
        assert other.status_code == 409
        # A new sequence is still signed normally.
        assert client.get(f"/v1/rentals/{RENTAL}/report", params={"sequence": sequence - 1}).status_code == 200

    storage = NodeStorage(db_path)
    final = storage.get_report("usage", RENTAL, sequence)
    storage.close()
    assert final.digest == recorded.digest
    assert "0x" + final.signature.hex() == signed["signature"]
