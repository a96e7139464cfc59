"""POST /v1/rentals/{rental_id}/batches: every refusal, idempotent duplicates, rate limiting (in-process app)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from oracle.node.app import create_app
from oracle.node.settings import NodeSettings
from oracle.node.testing import AGENT_KEY, H100, NODE_KEY, TRACE_A, chain_batches, trace_samples
from oracle.telemetry.batches import TelemetryBatch, address_of

pytestmark = pytest.mark.skipif(not TRACE_A.is_file(), reason="shared H100 trace not present")

RENTAL = 7
MARKET = "0x" + "42" * 20
OTHER_KEY = bytes.fromhex("c3" * 32)


@pytest.fixture(scope="module")
def samples():
    return trace_samples()


@pytest.fixture(scope="module")
def batches(samples):
    return chain_batches(AGENT_KEY, RENTAL, samples, samples_per_batch=50)


def make_client(tmp_path, samples, **overrides) -> TestClient:
    now_ms = samples[-1].t_ms + 1000
    settings = NodeSettings(
        dev_mode=True,
        private_key="0x" + NODE_KEY.hex(),
        chain_id=31337,
        market_address=MARKET,
        db_path=tmp_path / "node.sqlite3",
        rentals=[{"rental_id": RENTAL, "agent": address_of(AGENT_KEY), "gpu_count": 1, "region": "test",
                  "grid_intensity_g_per_kwh": 400, "start_ms": samples[0].t_ms}],
        **overrides,
    )
    return TestClient(create_app(settings, clock=lambda: now_ms))


@pytest.fixture
def client(tmp_path, samples):
    with make_client(tmp_path, samples) as client:
        yield client


def post(client, body, rental_id: int | None = None) -> "httpx.Response":
    if rental_id is None:
        rental_id = body.rental_id if isinstance(body, TelemetryBatch) else RENTAL
    if isinstance(body, TelemetryBatch):
        body = body.to_wire_bytes()
    elif isinstance(body, dict):
        body = json.dumps(body).encode()
    return client.post(f"/v1/rentals/{rental_id}/batches", content=body, headers={"content-type": "application/json"})


def wire_text(batch: TelemetryBatch) -> str:
    return batch.to_wire_bytes().decode()


def resigned(batch: TelemetryBatch, key: bytes = AGENT_KEY, **changes) -> TelemetryBatch:
    fields = dict(rental_id=batch.rental_id, agent=address_of(key), batch_seq=batch.batch_seq,
                  prev_hash=batch.prev_hash, gpus=batch.gpus, samples=batch.samples,
                  chain_id=batch.chain_id, market=batch.market)
    fields.update(changes)
    return TelemetryBatch(**fields).signed(key)


def assert_refused(response, status: int, reason: str, words: str = "") -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["reason"] == reason, body
    assert words.lower() in body["detail"].lower(), body
    return body


def test_post_batch_accepts_the_chain_and_duplicates_are_idempotent(client, batches):
    for batch in batches[:3]:
        response = post(client, batch)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "accepted"
        assert response.json()["batch_hash"] == "0x" + batch.batch_hash().hex()
    again = post(client, batches[1])
    assert again.status_code == 200
    assert again.json() == {**again.json(), "status": "duplicate", "batch_seq": 1, "next_seq": 3}
    metrics = client.get("/metrics").text
    assert "gpurent_node_batches_accepted_total 3.0" in metrics
    assert "gpurent_node_batches_duplicate_total 1.0" in metrics


def test_post_batch_refuses_a_conflicting_duplicate(client, batches, samples):
    post(client, batches[0])
    other = resigned(batches[0], samples=tuple(samples[1:51]))
    assert_refused(post(client, other), 409, "conflict", "different batch")


def test_post_batch_refuses_a_sequence_gap_with_the_expected_seq(client, batches):
    post(client, batches[0])
    body = assert_refused(post(client, batches[2]), 409, "sequence_gap", "expected batch_seq 1")
    assert body["expected_seq"] == 1


def test_post_batch_refuses_a_broken_hash_chain(client, batches):
    post(client, batches[0])
    broken = resigned(batches[1], prev_hash=b"\x01" * 32)
    body = assert_refused(post(client, broken), 409, "prev_hash", "prev_hash")
    assert body["expected_prev_hash"] == "0x" + batches[0].batch_hash().hex()


def test_post_batch_refuses_a_body_over_the_limit(tmp_path, samples, batches):
    with make_client(tmp_path, samples, max_body_bytes=4096) as client:
        big = chain_batches(AGENT_KEY, RENTAL, samples[:100], samples_per_batch=100)[0]
        assert len(big.to_wire_bytes()) > 4096
        assert_refused(post(client, big), 413, "too_large", "limit")


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda w: w.replace('"batch_seq":0', '"batch_seq":0,"extra":1'), "unknown extra"),
        (lambda w: w.replace('"power_mw":79039', '"power_mw":NaN', 1), "NaN"),
        (lambda w: w.replace('"power_mw":79039', '"power_mw":Infinity', 1), "Infinity"),
        (lambda w: w.replace('"power_mw":79039', '"power_mw":79039.5', 1), "must be an integer, got float"),
        (lambda w: w.replace('"temp_c":42', '"temp_c":-1', 1), "out of range"),
        (lambda w: w.replace('"util_gpu_pct":0', '"util_gpu_pct":101', 1), "out of range"),
        (lambda w: w.replace('"rental_id":7', '"rental_id":"7"', 1), "must be an integer"),
        (lambda w: w[:-5], "not JSON"),
    ],
    ids=["unknown-field", "nan", "infinity", "float", "negative", "util-over-100", "string-int", "truncated"],
)
def test_post_batch_refuses_malformed_input(client, batches, edit, words):
    text = wire_text(batches[0])
    edited = edit(text)
    assert edited != text
    assert_refused(post(client, edited.encode()), 422, "schema", words)


def test_post_batch_refuses_deeply_nested_json(client):
    assert_refused(post(client, b"[" * 100_000 + b"]" * 100_000), 422, "schema", "nested too deeply")


def test_post_batch_refuses_power_beyond_twice_the_board_limit(client, samples):
    from dataclasses import replace

    bad = list(samples[:50])
    bad[3] = replace(bad[3], power_mw=2 * H100.power_limit_mw + 1)
    batch = chain_batches(AGENT_KEY, RENTAL, bad, samples_per_batch=50)[0]
    assert_refused(post(client, batch), 422, "implausible", "beyond 2x the board limit")


def test_post_batch_refuses_more_gpus_than_rented(client, samples):
    from dataclasses import replace

    gpus = (H100, replace(H100, index=1, uuid="GPU-second"))
    batch = chain_batches(AGENT_KEY, RENTAL, samples[:50], gpus=gpus, samples_per_batch=50)[0]
    assert_refused(post(client, batch), 422, "implausible", "2 GPUs")


def test_post_batch_refuses_samples_from_the_future(client, samples):
    from oracle.node.testing import shifted

    future = shifted(samples[:50], samples[-1].t_ms + 1000 + 60_000)
    batch = chain_batches(AGENT_KEY, RENTAL, future, samples_per_batch=50)[0]
    assert_refused(post(client, batch), 422, "future", "ahead of this node's clock")


def test_post_batch_refuses_stale_samples_that_are_not_the_next_batch(tmp_path, samples):
    with make_client(tmp_path, samples, max_batch_age_ms=30_000) as client:
        batch = chain_batches(AGENT_KEY, RENTAL, samples[:100], samples_per_batch=50)[1]  # ~80 s old, not next
        assert_refused(post(client, batch), 422, "stale", "old")


def test_a_node_away_longer_than_the_batch_age_catches_up_on_old_contiguous_batches(tmp_path, samples):
    # The agent's spool re-sends a node that was away everything it missed, oldest first: each old
    # batch that is exactly the next one of the stored chain is taken (docs/protocol.md, catch-up).
    with make_client(tmp_path, samples, max_batch_age_ms=30_000) as client:
        old = chain_batches(AGENT_KEY, RENTAL, samples[:200], samples_per_batch=50)  # all older than 30 s
        for batch in old:
            response = post(client, batch)
            assert response.status_code == 200, response.text
        assert client.get(f"/v1/rentals/{RENTAL}/report").json()["sequence"] == len(old)
        assert post(client, old[1]).json()["status"] == "duplicate"  # a re-send is still a duplicate
        ahead = chain_batches(AGENT_KEY, RENTAL, samples[:400], samples_per_batch=50)[5]  # old, skips batch 4
        assert_refused(post(client, ahead), 422, "stale", "not the next batch")


def test_post_batch_refuses_samples_before_the_rental_started(client, samples):
    from oracle.node.testing import shifted

    early = shifted(samples[:50], samples[0].t_ms - 60_000)
    batch = chain_batches(AGENT_KEY, RENTAL, early, samples_per_batch=50)[0]
    assert_refused(post(client, batch), 422, "stale", "before rental")


def test_post_batch_refuses_a_signature_that_does_not_match_the_body(client, batches):
    tampered = wire_text(batches[0]).replace('"power_mw":79039', '"power_mw":79040', 1)
    assert_refused(post(client, tampered.encode()), 401, "bad_signature", "not to the batch's agent")


def test_post_batch_refuses_a_key_other_than_the_rentals_agent(client, batches):
    impostor = resigned(batches[0], key=OTHER_KEY)
    assert_refused(post(client, impostor), 403, "wrong_agent", "rental 7's agent")


def test_post_batch_refuses_an_unknown_rental(client, batches):
    stranger = resigned(batches[0], rental_id=8)
    assert_refused(post(client, stranger), 404, "unknown_rental", "no rental 8")


def test_post_batch_rate_limits_per_agent_with_retry_after(tmp_path, samples, batches):
    with make_client(tmp_path, samples, agent_rate_per_s=0.01, agent_burst=2) as client:
        assert post(client, batches[0]).status_code == 200
        assert post(client, batches[1]).status_code == 200
        response = post(client, batches[2])
        assert_refused(response, 429, "rate_limited", "too many")
        assert int(response.headers["retry-after"]) >= 1
        assert 'gpurent_node_batches_rejected_total{reason="rate_limited"} 1.0' in client.get("/metrics").text


def test_post_batch_rate_limits_per_client_ip(tmp_path, samples, batches):
    with make_client(tmp_path, samples, ip_rate_per_s=0.01, ip_burst=1) as client:
        assert post(client, batches[0]).status_code == 200
        assert_refused(post(client, batches[1]), 429, "rate_limited", "testclient")


def test_openapi_documents_the_wire_batch(client):
    schema = client.get("/openapi.json").json()
    assert "/v1/rentals/{rental_id}/batches" in schema["paths"]
    wire = schema["components"]["schemas"]["BatchWire"]
    assert wire["additionalProperties"] is False
    assert set(wire["properties"]) == {"chain_id", "market", "rental_id", "agent", "batch_seq", "prev_hash", "gpus",
                                       "samples", "signature"}
    assert client.get("/healthz").json()["signer"] == address_of(NODE_KEY)


def test_post_batch_verifies_a_big_batch_off_the_event_loop(client, samples):
    whole = chain_batches(AGENT_KEY, RENTAL, samples, samples_per_batch=len(samples))[0]
    assert len(whole.to_wire_bytes()) > 64 * 1024
    assert post(client, whole).json()["status"] == "accepted"
