"""Reports through the in-process app: metered like the core from scratch, recorded, signed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from oracle.attestation.eip712 import UsageReport, usage_batch_digest, usage_report_digest
from oracle.attestation.reports import build_usage_report
from oracle.attestation.signing import recover_signer
from oracle.metering import DEFAULT_POLICY, meter_samples
from oracle.node.app import create_app
from oracle.node.attestor import report_from_bytes
from oracle.node.settings import NodeSettings
from oracle.node.testing import (
    AGENT_KEY, H100, NODE_KEY, TEST_CHAIN_ID, TEST_MARKET, TRACE_A, chain_batches, in_process_node, post_batches,
    rental_row, trace_samples,
)
from oracle.telemetry.batches import address_of

pytestmark = pytest.mark.skipif(not TRACE_A.is_file(), reason="shared H100 trace not present")

RENTAL = 7
CHAIN_ID, MARKET = TEST_CHAIN_ID, TEST_MARKET
GRID = 400


@pytest.fixture(scope="module")
def samples():
    return trace_samples()


@pytest.fixture
def node(tmp_path, samples):
    with in_process_node(tmp_path / "node.sqlite3", [rental_row(RENTAL, address_of(AGENT_KEY), samples[0].t_ms, GRID)],
                         samples[-1].t_ms + 1000) as node:
        yield node


ingest = post_batches


def expected_report(samples, batches, sequence):
    covered = [s for batch in batches[:sequence] for s in batch.samples]
    totals = meter_samples(covered, [H100], DEFAULT_POLICY, GRID, rental_start_ms=samples[0].t_ms)
    return build_usage_report(RENTAL, sequence, totals, batches[sequence - 1].batch_hash(), 1)


def test_report_equals_metering_from_scratch_and_is_signed_by_the_node(node, samples):
    client, _ = node
    batches = chain_batches(AGENT_KEY, RENTAL, samples, samples_per_batch=40)
    ingest(client, batches)
    for sequence in (5, 3, len(batches)):  # out of order: the sample cache must not leak
        body = client.get(f"/v1/rentals/{RENTAL}/report", params={"sequence": sequence}).json()
        report = expected_report(samples, batches, sequence)
        assert body["report"]["energy_millijoules"] == report.energy_millijoules
        digest = usage_report_digest(report, CHAIN_ID, MARKET)
        assert body["digest"] == "0x" + digest.hex()
        assert recover_signer(digest, bytes.fromhex(body["signature"][2:])) == address_of(NODE_KEY)
        assert body["signer"] == address_of(NODE_KEY)
    whole = client.get(f"/v1/rentals/{RENTAL}/report").json()  # default: all it holds
    assert whole["sequence"] == len(batches)
    assert whole["signature"] == body["signature"]  # the same report, signed once
    assert whole["report"]["available_gpu_seconds"] == 85  # the trace's length
    assert 'gpurent_node_reports_signed_total{kind="usage"} 3.0' in client.get("/metrics").text


def test_report_refuses_a_sequence_the_node_does_not_hold(node, samples):
    client, _ = node
    ingest(client, chain_batches(AGENT_KEY, RENTAL, samples[:100], samples_per_batch=50))
    response = client.get(f"/v1/rentals/{RENTAL}/report", params={"sequence": 3})
    assert response.status_code == 409
    assert "holds 2 contiguous batches" in response.json()["detail"]
    assert client.get("/v1/rentals/99/report").status_code == 404


def test_report_for_a_recorded_sequence_is_served_from_storage_never_re_signed_differently(node, samples):
    """Issue 9: a report already signed is served from storage, without metering again; so a
    changed view of the node (say the registry's grid intensity) cannot produce a second,
    different signature for the same sequence."""
    client, app = node
    batches = chain_batches(AGENT_KEY, RENTAL, samples[:200], samples_per_batch=50)
    ingest(client, batches)
    first = client.get(f"/v1/rentals/{RENTAL}/report", params={"sequence": 4}).json()
    from dataclasses import replace

    registry = app.state.node.attestor.registry
    registry.upsert(replace(registry.get(RENTAL), grid_intensity_g_per_kwh=GRID + 1))
    attestor = app.state.node.attestor
    metered = []
    original_meter = attestor.meter
    attestor.meter = lambda *args, **kwargs: metered.append(args) or original_meter(*args, **kwargs)
    response = client.get(f"/v1/rentals/{RENTAL}/report", params={"sequence": 4})
    # served from storage: the recorded report and its signature, never a re-metered one
    assert response.status_code == 200, response.text
    assert metered == []
    assert (response.json()["digest"], response.json()["signature"]) == (first["digest"], first["signature"])
    recorded = app.state.node.storage.get_report("usage", RENTAL, 4)
    assert "0x" + recorded.digest.hex() == first["digest"]
    assert "0x" + recorded.signature.hex() == first["signature"]


def test_batch_signature_only_for_reports_this_node_recorded(node, samples):
    client, app = node
    ingest(client, chain_batches(AGENT_KEY, RENTAL, samples[:200], samples_per_batch=50))
    report = client.get(f"/v1/rentals/{RENTAL}/report", params={"sequence": 4}).json()
    ok = client.post("/v1/batch-signatures",
                     json={"reports": [{"rental_id": RENTAL, "sequence": 4, "digest": report["digest"]}]})
    assert ok.status_code == 200, ok.text
    recorded = app.state.node.storage.get_report("usage", RENTAL, 4)
    digest = usage_batch_digest([report_from_bytes(UsageReport, recorded.body)], CHAIN_ID, MARKET)
    assert ok.json()["digest"] == "0x" + digest.hex()
    assert recover_signer(digest, bytes.fromhex(ok.json()["signature"][2:])) == address_of(NODE_KEY)

    wrong = client.post("/v1/batch-signatures",
                        json={"reports": [{"rental_id": RENTAL, "sequence": 4, "digest": "0x" + "ab" * 32}]})
    assert wrong.status_code == 409
    unknown = client.post("/v1/batch-signatures",
                          json={"reports": [{"rental_id": RENTAL, "sequence": 3, "digest": report["digest"]}]})
    assert unknown.status_code == 404
    extra = client.post("/v1/batch-signatures", json={"reports": [], "x": 1})
    assert extra.status_code == 422


def test_faults_are_recorded_and_signed(node, samples):
    client, app = node
    # 10 s in the middle drawing 800 W on a 700 W model: a COUNTER_PHYSICS fault.
    from dataclasses import replace

    middle = len(samples) // 2
    hot = samples[:middle] + [replace(s, power_mw=800_000) for s in samples[middle:middle + 100]] \
        + samples[middle + 100:]
    ingest(client, chain_batches(AGENT_KEY, RENTAL, hot, samples_per_batch=50))
    body = client.get(f"/v1/rentals/{RENTAL}/faults").json()
    assert body["faults"], body
    downtime = [f for f in body["faults"] if f["signed"] and f["signed"]["report"]["kind"] == 3]
    assert downtime
    signed = downtime[0]["signed"]
    assert recover_signer(bytes.fromhex(signed["digest"][2:]), bytes.fromhex(signed["signature"][2:])) == \
        address_of(NODE_KEY)
    recorded = app.state.node.storage.get_report("fault", RENTAL, downtime[0]["fault_id"])
    assert "0x" + recorded.signature.hex() == signed["signature"]


def test_report_routes_are_rate_limited_per_client(tmp_path, samples):
    settings = NodeSettings(
        dev_mode=True, private_key="0x" + NODE_KEY.hex(), chain_id=CHAIN_ID, market_address=MARKET,
        db_path=tmp_path / "node.sqlite3", report_rate_per_s=0.01, report_burst=1,
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/rentals/1/report").status_code == 404
        limited = client.get("/v1/rentals/1/faults")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert "batches_rejected_total{" not in client.get("/metrics").text
