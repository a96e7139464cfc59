"""Issue 10 on the node: GPU use by a process outside the renter's container, as the signed
telemetry shows it, is not billed and is a FOREIGN_PROCESS fault; every node reports the same
bytes for it.

The trace is the real H100 trace at 1 Hz; for 20 s of it the provider's own process (a miner)
runs on the rented GPU and the agent's attribution stamps those samples.
"""

from __future__ import annotations

import dataclasses

import pytest

from oracle.metering import FaultKind
from oracle.node.attestor import Attestor, report_bytes
from oracle.node.rentals import InMemoryRentalRegistry
from oracle.node.storage import NodeStorage
from oracle.traces import TRACE_A

from metering_node import MARKET, RENTAL, ingest, make_node, one_hz, rental, slashable_faults

pytestmark = pytest.mark.skipif(not TRACE_A.is_file(), reason="real H100 trace not present")

OTHER_NODE_KEY = bytes.fromhex("c3" * 32)
MINING_S = range(30, 50)


@pytest.fixture(scope="module")
def real():
    return one_hz()


def mined(real):
    t0 = real[0].t_ms
    return [dataclasses.replace(s, foreign_process_count=1) if (s.t_ms - t0) // 1000 in MINING_S else s
            for s in real]


def test_foreign_gpu_use_during_the_rental_is_unbilled_and_a_slashable_fault(tmp_path, real):
    clean = make_node(tmp_path / "clean", rental(real[0].t_ms), real[-1].t_ms + 1000)
    ingest(clean, real)
    dirty = make_node(tmp_path / "dirty", rental(real[0].t_ms), real[-1].t_ms + 1000)
    ingest(dirty, mined(real))
    paid, unpaid = clean.meter(RENTAL)[2], dirty.meter(RENTAL)[2]
    stamped = mined(real)
    stamped_ms = sum(b.t_ms - a.t_ms for a, b in zip(stamped, stamped[1:]) if b.foreign_process_count)
    assert paid.available_gpu_milliseconds - unpaid.available_gpu_milliseconds == stamped_ms >= 19_000
    assert unpaid.energy_millijoules < paid.energy_millijoules
    assert [f.kind for f in unpaid.faults] == [FaultKind.FOREIGN_PROCESS]
    assert [r.kind for r in slashable_faults(dirty)] == [FaultKind.FOREIGN_PROCESS]
    usage = dirty.usage_report(RENTAL).report
    assert usage.fault_flags == 1 << FaultKind.FOREIGN_PROCESS
    assert usage.energy_millijoules == unpaid.energy_millijoules
    assert slashable_faults(clean) == []


def test_every_node_reports_the_same_bytes_for_foreign_gpu_use(tmp_path, real):
    now_ms = real[-1].t_ms + 1000
    first = make_node(tmp_path / "a", rental(real[0].t_ms), now_ms)
    second = Attestor(storage=NodeStorage(tmp_path / "b.sqlite3"),
                      registry=InMemoryRentalRegistry([rental(real[0].t_ms)]), node_key=OTHER_NODE_KEY,
                      chain_id=31337, market_address=MARKET, signer_set_version=1, clock=lambda: now_ms)
    assert first.address != second.address
    for node in (first, second):
        ingest(node, mined(real))
    a, b = first.usage_report(RENTAL), second.usage_report(RENTAL)
    assert report_bytes(a.report) == report_bytes(b.report) and a.digest == b.digest
    faults_a, faults_b = slashable_faults(first), slashable_faults(second)
    assert faults_a and [report_bytes(r) for r in faults_a] == [report_bytes(r) for r in faults_b]
