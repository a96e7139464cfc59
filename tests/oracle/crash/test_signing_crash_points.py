"""An honest node SIGKILLed at every point of its signing path never signs two different reports
for the same rental and sequence (what the OperatorRegistry slashes as equivocation).

For each crash point of ``oracle.node.attestor`` (``SIGNING_FAULT_POINTS``: before the record,
after the record, after the signature is made but before it is stored, after it is stored) a
real uvicorn node process is killed there by its own ``os.kill(SIGKILL)``
(``GPURENT_NODE_FAULT``, dev mode), then restarted on the same SQLite file, alternately with a
view of the rental that meters a DIFFERENT report for the same sequence (another grid intensity:
another carbon figure, checked below) and with the original view. Every signature the node ever
hands out for that (rental, sequence), and the one it stored, must be over one and the same
report content (the node serves what it recorded, or refuses; it never re-meters a recorded
sequence into a second report).
"""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from oracle.attestation.eip712 import UsageReport
from oracle.attestation.signing import recover_signer
from oracle.metering import DEFAULT_POLICY, meter_samples
from oracle.node.attestor import SIGNING_FAULT_POINTS, report_bytes
from oracle.node.storage import NodeStorage
from oracle.node.testing import (
    AGENT_KEY, H100, NODE_KEY, TRACE_A, NodeProcess, chain_batches, dev_node_env, rental_env, shifted, trace_samples,
)
from oracle.telemetry.batches import address_of

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not TRACE_A.is_file(), reason="shared H100 trace not present")]

RENTAL = 33
MARKET = "0x" + "42" * 20
GRID_A, GRID_B = 400, 250  # two views of the rental: same telemetry, different carbon


def node_env(db_path, start_ms, grid, fault=None) -> dict:
    return dev_node_env(db_path, rental_env(RENTAL, address_of(AGENT_KEY), start_ms, grid), market=MARKET, fault=fault)


def _content(report: dict) -> tuple:
    """What the registry compares: every field but signer_set_version."""
    return tuple(sorted((k, v) for k, v in report.items() if k != "signer_set_version"))


@pytest.mark.parametrize("fault", SIGNING_FAULT_POINTS)
def test_node_killed_at_a_signing_point_never_signs_two_reports_for_one_sequence(tmp_path, fault):
    db_path = tmp_path / "node.sqlite3"
    samples = shifted(trace_samples()[:300], time.time_ns() // 1_000_000 - 1000)
    batches = chain_batches(AGENT_KEY, RENTAL, samples, samples_per_batch=50)
    sequence = len(batches)
    start_ms = samples[0].t_ms
    # The two views really meter different reports for the same telemetry.
    carbon = {grid: meter_samples(samples, [H100], DEFAULT_POLICY, grid, rental_start_ms=start_ms).carbon_milligrams
              for grid in (GRID_A, GRID_B)}
    assert carbon[GRID_A] != carbon[GRID_B]
    earlier = sequence - 1  # signed and handed out before the crash, then the node is SIGKILLed
    handed_out: dict[int, list] = {earlier: [], sequence: []}  # (report, digest, signature) of each 200
    refusals = {earlier: 0, sequence: 0}  # 409 report_conflict answers (allowed; a second report is not)

    def ask(client: httpx.Client, seq: int) -> None:
        response = client.get(f"/v1/rentals/{RENTAL}/report", params={"sequence": seq})
        if response.status_code == 409:
            assert response.json()["reason"] == "report_conflict"
            refusals[seq] += 1
            return
        assert response.status_code == 200, response.text
        body = response.json()
        handed_out[seq].append((body["report"], bytes.fromhex(body["digest"][2:]), bytes.fromhex(body["signature"][2:])))

    # 0. View A signs `earlier` and hands the signature out; then the node is SIGKILLed from outside.
    first = NodeProcess(node_env(db_path, start_ms, GRID_A)).start()
    try:
        with httpx.Client(base_url=first.url, timeout=10) as client:
            for batch in batches:
                assert client.post(f"/v1/rentals/{batch.rental_id}/batches", content=batch.to_wire_bytes()).status_code == 200
            ask(client, earlier)
        first.proc.send_signal(signal.SIGKILL)
        assert first.wait() == -signal.SIGKILL
    finally:
        first.stop()

    # 1. View A again, killed by itself at the crash point while signing `sequence`.
    doomed = NodeProcess(node_env(db_path, start_ms, GRID_A, fault=fault)).start()
    try:
        with httpx.Client(base_url=doomed.url, timeout=10) as client, pytest.raises(httpx.TransportError):
            client.get(f"/v1/rentals/{RENTAL}/report", params={"sequence": sequence})
        assert doomed.wait() == -signal.SIGKILL
    finally:
        doomed.stop()

    # 2. Restarts alternating the two views; every answer is collected (each asked twice).
    for grid in (GRID_B, GRID_A, GRID_B):
        with NodeProcess(node_env(db_path, start_ms, grid)) as node, \
                httpx.Client(base_url=node.url, timeout=10) as client:
            for seq in (earlier, sequence, earlier, sequence):
                ask(client, seq)

    storage = NodeStorage(db_path)
    stored = {seq: storage.get_report("usage", RENTAL, seq) for seq in handed_out}
    storage.close()

    # Per (rental, sequence): exactly one report content was ever signed, and it is the stored one.
    for seq, answers in handed_out.items():
        assert answers, f"the node never signed sequence {seq}"
        assert len({_content(report) for report, _, _ in answers}) == 1, f"sequence {seq} signed twice"
        assert {digest for _, digest, _ in answers} == {stored[seq].digest}
        assert stored[seq].signature is not None
        for _, digest, sig in answers:
            assert recover_signer(digest, sig) == address_of(NODE_KEY)
        assert len({sig for _, _, sig in answers} | {stored[seq].signature}) == 1  # deterministic (RFC 6979)
        report = UsageReport(**{k: (bytes.fromhex(v[2:]) if isinstance(v, str) else v)
                                for k, v in answers[0][0].items()})
        assert report_bytes(report) == stored[seq].body
