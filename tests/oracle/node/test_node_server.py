"""A real node: uvicorn in a subprocess on loopback, configured from env with an encrypted keystore."""

from __future__ import annotations

import time

import httpx
import pytest

from oracle.attestation.signing import recover_signer
from oracle.keys import CHEAPEST_ACCEPTED_KDF, new_keystore
from oracle.node.testing import (
    AGENT_KEY, NODE_KEY, TRACE_A, NodeProcess, chain_batches, dev_node_env, rental_env, shifted, trace_samples,
)
from oracle.telemetry.batches import address_of

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not TRACE_A.is_file(), reason="shared H100 trace not present")]

RENTAL = 11
PASSWORD = "a long and unguessable node password"


def test_real_node_ingests_the_trace_and_signs_a_report_its_key_recovers(tmp_path):
    keystore = tmp_path / "node-key.json"
    new_keystore(keystore, PASSWORD, private_key=NODE_KEY, **CHEAPEST_ACCEPTED_KDF)
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD)
    samples = shifted(trace_samples(), time.time_ns() // 1_000_000 - 1000)
    env = {
        "GPURENT_NODE_KEYSTORE_PATH": str(keystore),
        "GPURENT_NODE_KEYSTORE_PASSWORD_FILE": str(password_file),
        "GPURENT_NODE_CHAIN_ID": "31337",
        "GPURENT_NODE_MARKET_ADDRESS": "0x" + "42" * 20,
        "GPURENT_NODE_DB_PATH": str(tmp_path / "node.sqlite3"),
        "GPURENT_NODE_RENTALS": rental_env(RENTAL, address_of(AGENT_KEY), samples[0].t_ms),
    }
    batches = chain_batches(AGENT_KEY, RENTAL, samples, samples_per_batch=10)
    with NodeProcess(env) as node, httpx.Client(base_url=node.url, timeout=10) as client:
        assert client.get("/healthz").json() == {"status": "ok", "signer": address_of(NODE_KEY)}
        for batch in batches:
            response = client.post(f"/v1/rentals/{RENTAL}/batches", content=batch.to_wire_bytes(),
                                   headers={"content-type": "application/json"})
            assert response.status_code == 200, response.text
        gap = client.post(f"/v1/rentals/{RENTAL}/batches", content=batches[3].to_wire_bytes())
        assert gap.json()["status"] == "duplicate"

        report = client.get(f"/v1/rentals/{RENTAL}/report").json()
        assert report["sequence"] == len(batches)
        assert report["report"]["available_gpu_seconds"] == 85
        digest = bytes.fromhex(report["digest"][2:])
        assert recover_signer(digest, bytes.fromhex(report["signature"][2:])) == address_of(NODE_KEY)

        metrics = client.get("/metrics").text
        assert f"gpurent_node_batches_accepted_total {len(batches)}.0" in metrics
        assert "gpurent_node_ingest_lag_seconds" in metrics
        assert "/v1/rentals/{rental_id}/report" in client.get("/openapi.json").json()["paths"]
        assert client.get("/docs").status_code == 200


def test_entering_an_already_started_node_process_starts_no_second_node(tmp_path):
    """``with NodeProcess(env).start(timeout_s=90) as node`` once started two nodes and left the
    first running after the test (found as a leftover process after a test run)."""
    env = dev_node_env(tmp_path / "node.sqlite3", rental_env(RENTAL, address_of(AGENT_KEY), 0))
    started = NodeProcess(env).start()
    first = started.proc
    with started as node:
        assert node.proc is first
        assert httpx.get(node.url + "/healthz", timeout=10).status_code == 200
    assert first.poll() is not None  # stopped on leaving the block: nothing left behind
