"""GET /faults is paged and cheap (issue 9): a page names at most ``limit`` fault ids from
``from_id``; a page the node already signed is served from storage without metering."""

from __future__ import annotations

from dataclasses import replace

import pytest

from oracle.node.testing import AGENT_KEY, TRACE_A, chain_batches, in_process_node, post_batches, rental_row, trace_samples
from oracle.telemetry.batches import address_of

pytestmark = pytest.mark.skipif(not TRACE_A.is_file(), reason="shared H100 trace not present")

RENTAL = 7


@pytest.fixture
def node(tmp_path):
    # Power alternating around 1.1 x the board limit: impossible physics, faults (the spam).
    samples = [replace(s, power_mw=770_000 if i % 2 else s.power_mw) for i, s in enumerate(trace_samples())]
    with in_process_node(tmp_path / "node.sqlite3", [rental_row(RENTAL, address_of(AGENT_KEY), samples[0].t_ms)],
                         samples[-1].t_ms + 1000) as (client, app):
        post_batches(client, chain_batches(AGENT_KEY, RENTAL, samples, samples_per_batch=40))
        yield client, app


def test_a_fault_page_names_at_most_limit_fault_ids_from_from_id(node):
    client, _ = node
    everything = client.get(f"/v1/rentals/{RENTAL}/faults").json()["faults"]
    assert everything, "the over-limit power produced no fault"
    page = client.get(f"/v1/rentals/{RENTAL}/faults", params={"from_id": 0, "limit": 1}).json()["faults"]
    assert [f["fault_id"] for f in page] == [0]
    assert page[0] == everything[0]
    beyond = client.get(f"/v1/rentals/{RENTAL}/faults", params={"from_id": len(everything), "limit": 5}).json()
    assert beyond["faults"] == []
    assert client.get(f"/v1/rentals/{RENTAL}/faults", params={"limit": 257}).status_code == 422


def test_a_signed_fault_page_is_served_from_storage_without_metering(node):
    client, app = node
    first = client.get(f"/v1/rentals/{RENTAL}/faults", params={"from_id": 0, "limit": 1}).json()
    attestor = app.state.node.attestor
    metered = []
    original = attestor.meter
    attestor.meter = lambda *a, **kw: metered.append(a) or original(*a, **kw)
    try:
        again = client.get(f"/v1/rentals/{RENTAL}/faults", params={"from_id": 0, "limit": 1}).json()
    finally:
        attestor.meter = original
    assert again["faults"] == first["faults"]
    assert metered == []  # no metering, no write: a repeated page costs a storage read
