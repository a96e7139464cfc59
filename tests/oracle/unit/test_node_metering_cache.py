"""The node's incremental, checkpointed view meters exactly what the pure core meters from scratch."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle.metering import DEFAULT_POLICY, feed, new_state, totals as totals_of
from oracle.node.attestor import Attestor
from oracle.node.rentals import InMemoryRentalRegistry, Rental, meter_terms
from oracle.node.storage import NodeStorage
from oracle.node.testing import (
    AGENT_KEY,
    H100,
    NODE_KEY,
    TEST_CHAIN_ID,
    TEST_MARKET,
    TRACE_A,
    chain_batches,
    trace_samples,
)
from oracle.telemetry.batches import address_of

pytestmark = pytest.mark.skipif(not TRACE_A.is_file(), reason="shared H100 trace not present")

SAMPLES = trace_samples() if TRACE_A.is_file() else []


@settings(max_examples=12, deadline=None)
@given(
    samples_per_batch=st.integers(min_value=7, max_value=300),
    queries=st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=6),
)
def test_meter_any_sequence_in_any_order_equals_metering_from_scratch(samples_per_batch, queries):
    start_ms = SAMPLES[0].t_ms
    rental = Rental(3, address_of(AGENT_KEY), 1, "", 300, start_ms, gpu_model=H100.name)
    terms = meter_terms(rental)
    batches = chain_batches(AGENT_KEY, 3, SAMPLES, samples_per_batch=samples_per_batch)
    with tempfile.TemporaryDirectory() as workdir:
        storage = NodeStorage(Path(workdir) / "node.sqlite3")
        attestor = Attestor(
            storage=storage,
            registry=InMemoryRentalRegistry([rental]),
            node_key=NODE_KEY, chain_id=TEST_CHAIN_ID, market_address=TEST_MARKET, signer_set_version=1,
            clock=lambda: SAMPLES[-1].t_ms,
        )
        for batch in batches:
            assert attestor.ingest(batch.to_wire_bytes()).status == "accepted"
        for fraction in queries:
            sequence = 1 + int(fraction * (len(batches) - 1))
            _, _, totals, telemetry_hash = attestor.meter(3, sequence)
            covered = [s for batch in batches[:sequence] for s in batch.samples]
            assert totals == totals_of(feed(new_state([H100], terms), terms, DEFAULT_POLICY, covered), terms)
            assert telemetry_hash == batches[sequence - 1].batch_hash()
        storage.close()
