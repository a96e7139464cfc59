"""Issue 9: cheap, rate-limited reads; peers authenticated as signer-set members with their own
limits; batches bound to the node's chain and market; /healthz fails when storage fails."""

from __future__ import annotations

import time

import pytest

from oracle.node.api.routes.health import PROBE_EVERY_S
from oracle.node.peerauth import PeerAuth, PeerVerifier, sign_request
from oracle.node.testing import (
    AGENT_KEY, NODE_KEY, TEST_CHAIN_ID, TEST_MARKET, TRACE_A, chain_batches, in_process_node, post_batches,
    rental_row, trace_samples,
)
from oracle.telemetry.batches import address_of

pytestmark = pytest.mark.skipif(not TRACE_A.is_file(), reason="shared H100 trace not present")

RENTAL = 7
PEER_KEY = bytes.fromhex("d4" * 32)
STRANGER_KEY = bytes.fromhex("e5" * 32)


@pytest.fixture(scope="module")
def samples():
    return trace_samples()


@pytest.fixture
def node(tmp_path, samples):
    with in_process_node(tmp_path / "node.sqlite3", [rental_row(RENTAL, address_of(AGENT_KEY), samples[0].t_ms)],
                         samples[-1].t_ms + 1000, report_rate_per_s=0.01, report_burst=3, peer_rate_per_s=0.01,
                         peer_burst=50, peer_signers=[address_of(PEER_KEY)]) as node:
        yield node


ingest = post_batches


def count_metering(app, monkeypatch) -> list[int]:
    calls: list[int] = []
    attestor = app.state.node.attestor
    meter = attestor.meter
    monkeypatch.setattr(attestor, "meter", lambda *a, **k: calls.append(1) or meter(*a, **k))
    return calls


def test_a_signed_report_is_served_from_storage_without_metering_again(node, samples, monkeypatch):
    client, app = node
    ingest(client, chain_batches(AGENT_KEY, RENTAL, samples, samples_per_batch=50))
    metered = count_metering(app, monkeypatch)
    first = client.get(f"/v1/rentals/{RENTAL}/report", params={"sequence": 5})
    assert first.status_code == 200 and len(metered) == 1
    again = client.get(f"/v1/rentals/{RENTAL}/report", params={"sequence": 5})
    latest = client.get(f"/v1/rentals/{RENTAL}/report")
    latest_again = client.get(f"/v1/rentals/{RENTAL}/report", auth=PeerAuth(NODE_KEY, TEST_CHAIN_ID, TEST_MARKET))
    assert again.json() == first.json() and latest_again.json() == latest.json()
    assert len(metered) == 2  # sequence 5 once, the latest once: re-reads cost a row lookup
    assert "gpurent_node_reports_served_stored_total 2.0" in client.get("/metrics").text


def test_fault_reports_are_metered_again_only_when_a_batch_arrived(node, samples, monkeypatch):
    client, app = node
    batches = chain_batches(AGENT_KEY, RENTAL, samples, samples_per_batch=50)
    ingest(client, batches[:-1])
    metered = count_metering(app, monkeypatch)
    first = client.get(f"/v1/rentals/{RENTAL}/faults").json()
    assert client.get(f"/v1/rentals/{RENTAL}/faults").json() == first
    assert len(metered) == 1
    ingest(client, batches[-1:])
    assert client.get(f"/v1/rentals/{RENTAL}/faults").json()["sequence"] == len(batches)
    assert len(metered) == 2


def test_report_reads_are_rate_limited_for_strangers(node, samples):
    client, _ = node
    ingest(client, chain_batches(AGENT_KEY, RENTAL, samples, samples_per_batch=50))
    answers = [client.get(f"/v1/rentals/{RENTAL}/faults").status_code for _ in range(5)]
    assert answers == [200, 200, 200, 429, 429]


def test_a_peer_signed_request_gets_the_peer_limit_not_the_per_ip_limit(node, samples):
    # The per-IP budget (3) is spent by strangers on the same address as the node's own aggregator:
    # signed requests of known signers still pass, on their own budget per signer.
    client, _ = node
    ingest(client, chain_batches(AGENT_KEY, RENTAL, samples, samples_per_batch=50))
    for _ in range(4):
        client.get(f"/v1/rentals/{RENTAL}/faults")
    assert client.get(f"/v1/rentals/{RENTAL}/report").status_code == 429
    for key in (NODE_KEY, PEER_KEY):  # this node's own aggregator, and a configured peer
        auth = PeerAuth(key, TEST_CHAIN_ID, TEST_MARKET)
        answers = {client.get(f"/v1/rentals/{RENTAL}/report", auth=auth).status_code for _ in range(20)}
        assert answers == {200}
        signed = client.post("/v1/batch-signatures", auth=auth, json={"reports": [
            {"rental_id": RENTAL, "sequence": 1, "digest": "0x" + "ab" * 32}]})
        assert signed.status_code in (404, 409)  # judged on its merits, not rate limited


@pytest.mark.parametrize("forge", ["forged", "stale", "other_path", "other_market", "partial"])
def test_bad_peer_headers_are_refused_not_demoted(node, samples, forge):
    client, _ = node
    path = f"/v1/rentals/{RENTAL}/report"
    key = PEER_KEY
    headers = sign_request(key, "GET", "/v1/rentals/8/report" if forge == "other_path" else path, TEST_CHAIN_ID,
                           "0x" + "43" * 20 if forge == "other_market" else TEST_MARKET,
                           now_s=1 if forge == "stale" else None)
    if forge == "partial":
        headers.pop("x-gpurent-signature")
    if forge == "forged":  # another key's signature under the peer's name
        headers["x-gpurent-signature"] = sign_request(STRANGER_KEY, "GET", path, TEST_CHAIN_ID,
                                                      TEST_MARKET)["x-gpurent-signature"]
    response = client.get(path, headers=headers)
    assert response.status_code == 401, response.text


def test_a_key_outside_the_signer_set_is_a_stranger(node, samples):
    client, _ = node
    ingest(client, chain_batches(AGENT_KEY, RENTAL, samples, samples_per_batch=50))
    auth = PeerAuth(STRANGER_KEY, TEST_CHAIN_ID, TEST_MARKET)
    answers = [client.get(f"/v1/rentals/{RENTAL}/report", auth=auth).status_code for _ in range(5)]
    assert answers == [200, 200, 200, 429, 429]  # the per-IP budget, not the peers' one


def test_peer_verifier_follows_the_chain_signer_set():
    verifier = PeerVerifier(TEST_CHAIN_ID, TEST_MARKET, [address_of(NODE_KEY)])
    headers = sign_request(PEER_KEY, "GET", "/v1/node", TEST_CHAIN_ID, TEST_MARKET)
    assert verifier.verify("GET", "/v1/node", headers) is None
    verifier.set_chain_signers([address_of(PEER_KEY)])
    assert verifier.verify("GET", "/v1/node", headers).address == address_of(PEER_KEY)
    assert verifier.verify("GET", "/v1/node", {}) is None
    # A rotation adds a signer: the set is read again (at most every REFRESH_EVERY_S) when it asks.
    reads = []
    verifier.refresh = lambda: reads.append(1) or [address_of(PEER_KEY), address_of(STRANGER_KEY)]
    newcomer = sign_request(STRANGER_KEY, "GET", "/v1/node", TEST_CHAIN_ID, TEST_MARKET)
    assert verifier.verify("GET", "/v1/node", newcomer).address == address_of(STRANGER_KEY)
    verifier.set_chain_signers([])
    assert verifier.verify("GET", "/v1/node", newcomer) is None  # no second read within 30 s
    assert len(reads) == 1


@pytest.mark.parametrize("other", [{"chain_id": 1}, {"market": "0x" + "43" * 20}])
def test_a_batch_for_another_chain_or_market_is_refused(node, samples, other):
    client, _ = node
    kwargs = {"chain_id": TEST_CHAIN_ID, "market": TEST_MARKET, **other}
    batch = chain_batches(AGENT_KEY, RENTAL, samples[:50], samples_per_batch=50, **kwargs)[0]
    response = client.post(f"/v1/rentals/{RENTAL}/batches", content=batch.to_wire_bytes())
    assert response.status_code == 403 and response.json()["reason"] == "wrong_domain", response.text
    ours = chain_batches(AGENT_KEY, RENTAL, samples[:50], samples_per_batch=50)[0]
    assert client.post(f"/v1/rentals/{RENTAL}/batches", content=ours.to_wire_bytes()).status_code == 200


def test_a_batch_posted_to_another_rental_path_is_refused(node, samples):
    client, _ = node
    batch = chain_batches(AGENT_KEY, RENTAL, samples[:50], samples_per_batch=50)[0]
    app = client.app
    registry = app.state.node.attestor.registry
    from dataclasses import replace

    registry.upsert(replace(registry.get(RENTAL), rental_id=8))
    response = client.post("/v1/rentals/8/batches", content=batch.to_wire_bytes())
    assert response.status_code == 422 and "posted to rental 8" in response.json()["detail"]


def test_healthz_fails_when_the_database_cannot_be_written(node):
    client, app = node
    assert client.get("/healthz").status_code == 200
    app.state.node.storage._conn.execute("PRAGMA query_only=1")  # reads work, every write fails
    time.sleep(PROBE_EVERY_S)
    response = client.get("/healthz")
    assert response.status_code == 503, response.text
    assert response.json()["status"] == "unhealthy"
    app.state.node.storage._conn.execute("PRAGMA query_only=0")
    time.sleep(PROBE_EVERY_S)
    assert client.get("/healthz").status_code == 200
