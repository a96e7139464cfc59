"""The agent's spool: chain continuity, per-node queues, and durability across a SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from eth_account import Account

from oracle.agent.spool import Spool
from oracle.errors import StorageError
from oracle.telemetry.batches import GENESIS_PREV_HASH, TelemetryBatch
from oracle.telemetry.samples import GpuInfo, Sample

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
AGENT = Account.from_key(KEY).address
GPUS = (GpuInfo(0, "GPU-test-0", "NVIDIA H100 80GB HBM3", 700_000),)
NODES = ["http://node-a:8000", "http://node-b:8000"]
REPO = Path(__file__).resolve().parents[3]


def chain(n: int, rental_id: int = 7, start_seq: int = 0, prev: bytes = GENESIS_PREV_HASH):
    batches = []
    for seq in range(start_seq, start_seq + n):
        t = 1_900_000_000_000 + seq * 10_000
        batch = TelemetryBatch(
            rental_id, AGENT, seq, prev, GPUS,
            (Sample(0, t, 1_000_000 + seq * 1_250_000, 125_000, 0, 0, 1100, 40),),
            chain_id=31337, market="0x" + "42" * 20,
        ).signed(KEY)
        batches.append(batch)
        prev = batch.batch_hash()
    return batches


def test_append_advances_the_chain_head_and_queues_every_node(tmp_path):
    batches = chain(3)
    with Spool(tmp_path / "spool.db") as spool:
        assert spool.chain_head(7) is None
        for b in batches:
            spool.append(b, NODES)
        head = spool.chain_head(7)
        assert (head.agent, head.next_seq, head.head_hash) == (AGENT, 3, batches[-1].batch_hash())
        assert head.last_t_ms == batches[-1].samples[-1].t_ms
        for node in NODES:
            assert spool.pending(node) == [(7, 0), (7, 1), (7, 2)]
        item = spool.next_pending(NODES[0])
        assert (item.seq, item.body) == (0, batches[0].to_wire_bytes())
        assert TelemetryBatch.from_wire_bytes(item.body) == batches[0]


def test_append_refuses_a_batch_that_does_not_extend_the_chain(tmp_path):
    batches = chain(3)
    with Spool(tmp_path / "spool.db") as spool:
        with pytest.raises(StorageError):
            spool.append(batches[1], NODES)  # skips batch 0
        spool.append(batches[0], NODES)
        with pytest.raises(StorageError):
            spool.append(batches[0], NODES)  # re-numbered
        forged = TelemetryBatch(7, AGENT, 1, bytes(32), GPUS, batches[1].samples,
                                chain_id=31337, market="0x" + "42" * 20).signed(KEY)
        with pytest.raises(StorageError):
            spool.append(forged, NODES)  # wrong prev_hash
        assert spool.chain_head(7).next_seq == 1
        assert spool.pending(NODES[0]) == [(7, 0)]


def test_delivery_is_per_node_and_bodies_go_once_every_node_has_them(tmp_path):
    batches = chain(2)
    with Spool(tmp_path / "spool.db") as spool:
        for b in batches:
            spool.append(b, NODES)
        spool.mark_delivered(NODES[0], 7, 0)
        assert spool.next_pending(NODES[0]).seq == 1
        assert spool.next_pending(NODES[1]).seq == 0
        assert len(spool.stored_batches(7)) == 2
        spool.mark_delivered(NODES[1], 7, 0)
        assert spool.stored_batches(7) == [batches[1].to_wire_bytes()]
        assert spool.chain_head(7).next_seq == 2  # the head outlives the bodies


def test_parked_batches_leave_the_queue_until_requeued(tmp_path):
    batches = chain(2)
    with Spool(tmp_path / "spool.db") as spool:
        for b in batches:
            spool.append(b, NODES)
        spool.park(NODES[0], 7, 0, "HTTP 422: bad")
        assert spool.next_pending(NODES[0]).seq == 1
        assert spool.parked(NODES[0]) == [(7, 0, "HTTP 422: bad")]
        assert spool.requeue_parked(NODES[0]) == 1
        assert spool.next_pending(NODES[0]).seq == 0


def test_a_newly_configured_node_gets_the_batches_still_on_disk(tmp_path):
    with Spool(tmp_path / "spool.db") as spool:
        for b in chain(3):
            spool.append(b, NODES[:1])
        spool.mark_delivered(NODES[0], 7, 0)
        assert spool.ensure_node("http://node-c:8000", 7) == 2
        assert spool.ensure_node("http://node-c:8000", 7) == 0
        assert spool.pending("http://node-c:8000") == [(7, 1), (7, 2)]


KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, sys.argv[2])
    sys.path.insert(0, os.path.dirname(sys.argv[3]))
    from test_spool import chain, NODES
    from oracle.agent.spool import Spool
    spool = Spool(sys.argv[1])
    for batch in chain(5):
        spool.append(batch, NODES)
    spool.mark_delivered(NODES[0], 7, 0)
    print("spooled", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint, no cleanup
    """
)


def test_spooled_batches_survive_a_sigkill_of_the_writer(tmp_path):
    path = tmp_path / "spool.db"
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(path), str(REPO), __file__],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "spooled" in proc.stdout
    assert os.path.exists(str(path) + "-wal")  # the commits were still only in the WAL
    expected = chain(5)
    with Spool(path) as spool:
        assert spool.pending(NODES[0]) == [(7, s) for s in range(1, 5)]
        assert spool.pending(NODES[1]) == [(7, s) for s in range(5)]
        assert spool.stored_batches(7) == [b.to_wire_bytes() for b in expected]
        head = spool.chain_head(7)
        assert (head.next_seq, head.head_hash) == (5, expected[-1].batch_hash())
        # and the chain continues where it stopped
        spool.append(chain(1, start_seq=5, prev=head.head_hash)[0], NODES)
        assert spool.chain_head(7).next_seq == 6
