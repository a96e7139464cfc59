"""oracle.node.storage: record before sign, never two reports per key, the batch chain checks."""

from __future__ import annotations


import asyncio

import pytest

from oracle.errors import SigningError
from oracle.node.errors import ReportConflict
from oracle.node.storage import AppendStatus, BatchRecord, GroupCommitWriter, NodeStorage

DIGEST_A = b"\xaa" * 32
DIGEST_B = b"\xbb" * 32


def fake_signer(calls: list):
    def sign(digest: bytes) -> bytes:
        calls.append(digest)
        return digest + digest + b"\x1b"

    return sign


@pytest.fixture
def storage(tmp_path):
    storage = NodeStorage(tmp_path / "node.sqlite3")
    yield storage
    storage.close()


def test_storage_uses_wal_and_full_sync(storage):
    conn = storage._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_sign_recorded_signs_only_the_recorded_digest_once(storage):
    calls: list = []
    storage.record_report("usage", 7, 3, DIGEST_A, b"{a}", now_ms=1)
    signature = storage.sign_recorded("usage", 7, 3, DIGEST_A, fake_signer(calls), now_ms=2)
    assert storage.get_report("usage", 7, 3).signature == signature
    assert storage.sign_recorded("usage", 7, 3, DIGEST_A, fake_signer(calls), now_ms=3) == signature
    assert calls == [DIGEST_A]  # the stored signature is returned, nothing signed twice


def test_sign_recorded_refuses_an_unrecorded_report(storage):
    calls: list = []
    with pytest.raises(SigningError, match="not recorded first"):
        storage.sign_recorded("usage", 7, 3, DIGEST_A, fake_signer(calls), now_ms=1)
    assert calls == []


def test_record_report_refuses_a_different_report_for_the_same_key(storage):
    storage.record_report("usage", 7, 3, DIGEST_A, b"{a}", now_ms=1)
    storage.record_report("usage", 7, 3, DIGEST_A, b"{a}", now_ms=2)  # the same again: fine
    with pytest.raises(ReportConflict, match="different usage report"):
        storage.record_report("usage", 7, 3, DIGEST_B, b"{b}", now_ms=3)
    calls: list = []
    with pytest.raises(ReportConflict):
        storage.sign_recorded("usage", 7, 3, DIGEST_B, fake_signer(calls), now_ms=4)
    assert calls == []
    storage.record_report("usage", 7, 4, DIGEST_B, b"{b}", now_ms=5)  # another sequence: fine
    storage.record_report("fault", 7, 3, DIGEST_B, b"{b}", now_ms=5)  # fault reports: own keys


def test_the_rule_holds_across_a_reopen(tmp_path):
    path = tmp_path / "node.sqlite3"
    first = NodeStorage(path)
    first.record_report("usage", 7, 3, DIGEST_A, b"{a}", now_ms=1)
    first.close()  # (the crash test kills a real node with SIGKILL instead)
    again = NodeStorage(path)
    with pytest.raises(ReportConflict):
        again.record_report("usage", 7, 3, DIGEST_B, b"{b}", now_ms=2)
    assert again.sign_recorded("usage", 7, 3, DIGEST_A, fake_signer([]), now_ms=3)


def record(seq, batch_hash, prev_hash, first_t=0, last_t=0, gpus=b"g"):
    return BatchRecord(7, seq, batch_hash, prev_hash, first_t, last_t, gpus, b"body", 0)


def test_append_batches_checks_sequence_chain_time_and_gpus(storage):
    h0, h1 = b"\x01" * 32, b"\x02" * 32
    outcomes = storage.append_batches([
        record(0, h0, bytes(32), 0, 10),
        record(0, h0, bytes(32), 0, 10),            # identical again
        record(0, b"\x09" * 32, bytes(32), 0, 10),  # different at the same seq
        record(2, h1, h0, 11, 20),                  # gap
        record(1, h1, b"\x07" * 32, 11, 20),        # wrong prev_hash
        record(1, h1, h0, 5, 20),                   # starts before batch 0 ended
        record(1, h1, h0, 11, 20, gpus=b"other"),   # different GPU list
        record(1, h1, h0, 11, 20),
    ])
    assert [o.status for o in outcomes] == [
        AppendStatus.APPENDED, AppendStatus.DUPLICATE, AppendStatus.CONFLICT, AppendStatus.GAP,
        AppendStatus.BAD_PREV_HASH, AppendStatus.TIME_REGRESSION, AppendStatus.GPUS_CHANGED,
        AppendStatus.APPENDED,
    ]
    assert outcomes[3].next_seq == 1
    assert storage.batch_head(7) == (2, h1)
    assert [storage.batch_hash(7, seq) for seq in (0, 1, 2)] == [h0, h1, None]


def test_group_commit_writer_resolves_every_waiter_in_few_commits(storage, monkeypatch):
    commits = []
    append = storage.append_batches
    monkeypatch.setattr(storage, "append_batches", lambda records: commits.append(len(records)) or append(records))
    writer = GroupCommitWriter(storage)
    records, prev = [], bytes(32)
    for seq in range(20):
        h = bytes([seq + 1]) * 32
        records.append(record(seq, h, prev, seq, seq))
        prev = h

    async def run():
        return await asyncio.gather(*(writer.append(r) for r in records))

    outcomes = asyncio.run(run())
    assert all(o.status is AppendStatus.APPENDED for o in outcomes)
    assert storage.batch_head(7)[0] == 20
    assert sum(commits) == 20 and len(commits) < 20  # grouped


def test_huge_rental_ids_are_stored_exactly(storage):
    rental = 2**256 - 1
    storage.record_report("usage", rental, 1, DIGEST_A, b"{a}", now_ms=1)
    assert storage.get_report("usage", rental, 1).digest == DIGEST_A
    assert storage.get_report("usage", rental - 1, 1) is None
