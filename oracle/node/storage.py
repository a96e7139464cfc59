"""The node's durable state in one SQLite file (stdlib sqlite3, WAL, ``synchronous=FULL``).

Tables: ``batches`` (each rental's hash chain of telemetry batches), ``signed_reports`` (every
usage and fault report the node was asked to sign), ``rentals`` and ``rental_terms`` (the
registry), ``meter_checkpoints`` (the metering core's state per rental and sequence: a cache that
makes a report cost the batches since the previous one).

The invariant this module enforces: **a report is committed durably before it is signed, and
the node never signs two different reports for the same key** (``(signer_set_version,
rental_id, sequence)`` for usage reports, ``(signer_set_version, rental_id, fault_id)`` for fault
reports), across crashes and restarts. The signer-set version is part of the key so that after
a rotation a recorded sequence can be signed again for the new set (the attestor re-signs the
recorded content unchanged, only the version differs: see ``Attestor.usage_report``).
:meth:`NodeStorage.record_report` commits the report's digest and bytes, or finds the one
already recorded and refuses (:class:`ReportConflict`) if it differs;
:meth:`NodeStorage.sign_recorded` re-reads the recorded row, refuses unless the digest matches,
and only then calls the signer and stores the signature.

Batches are appended through :meth:`NodeStorage.append_batches`, which checks sequence, hash
chain, time order and GPU set against the stored head inside the same transaction, for any
number of batches per commit (group commit: one fsync for many requests, see
:class:`GroupCommitWriter`).

One class over three modules: this one (connection, transactions, batches, archive and health),
:mod:`oracle.node.report_store` (record-before-sign) and :mod:`oracle.node.metering_store`
(rentals, terms, meter checkpoints); :mod:`oracle.node.group_commit` batches the appends.
"""

from __future__ import annotations

import enum
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from oracle.errors import StorageError
from oracle.node.group_commit import GroupCommitWriter
from oracle.node.metering_store import CHECKPOINT_KEEP_EVERY, METERING_SCHEMA, MeteringStore
from oracle.node.report_store import REPORT_KEYS, RecordedReport, ReportStore

if TYPE_CHECKING:
    from oracle.telemetry.batches import TelemetryBatch
    from oracle.telemetry.samples import GpuInfo

__all__ = [
    "AppendOutcome", "AppendStatus", "BatchRecord", "CHECKPOINT_KEEP_EVERY", "GroupCommitWriter", "NodeStorage",
    "REPORT_KEYS", "RecordedReport",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    rental_id   TEXT    NOT NULL,
    batch_seq   INTEGER NOT NULL,
    batch_hash  BLOB    NOT NULL,
    prev_hash   BLOB    NOT NULL,
    first_t_ms  INTEGER NOT NULL,
    last_t_ms   INTEGER NOT NULL,
    gpus_key    BLOB    NOT NULL,
    body        BLOB    NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (rental_id, batch_seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS signed_reports (
    kind        TEXT    NOT NULL,  -- usage | fault
    rental_id   TEXT    NOT NULL,
    signer_set_version INTEGER NOT NULL,
    key         INTEGER NOT NULL,  -- sequence (usage) or fault_id (fault)
    digest      BLOB    NOT NULL,
    body        BLOB    NOT NULL,
    signature   BLOB,
    created_ms  INTEGER NOT NULL,
    signed_ms   INTEGER,
    PRIMARY KEY (kind, rental_id, signer_set_version, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS archives (
    rental_id   TEXT    PRIMARY KEY,
    file_name   TEXT    NOT NULL,
    batches     INTEGER NOT NULL,
    archived_ms INTEGER NOT NULL,
    pruned_ms   INTEGER
);
CREATE TABLE IF NOT EXISTS rentals (
    rental_id   TEXT    PRIMARY KEY,
    agent       TEXT    NOT NULL,
    gpu_count   INTEGER NOT NULL,
    region      TEXT    NOT NULL,
    grid_intensity_g_per_kwh INTEGER NOT NULL,
    start_ms    INTEGER NOT NULL
);
"""

class AppendStatus(enum.Enum):
    APPENDED = "appended"
    DUPLICATE = "duplicate"          # the identical batch is already stored
    CONFLICT = "conflict"            # a different batch is stored at this sequence
    GAP = "gap"                      # not the next sequence number
    BAD_PREV_HASH = "bad_prev_hash"  # prev_hash is not the stored head's hash
    TIME_REGRESSION = "time_regression"
    GPUS_CHANGED = "gpus_changed"


@dataclass(frozen=True, slots=True)
class BatchRecord:
    rental_id: int
    batch_seq: int
    batch_hash: bytes
    prev_hash: bytes
    first_t_ms: int
    last_t_ms: int
    gpus_key: bytes
    body: bytes
    received_ms: int


@dataclass(frozen=True, slots=True)
class AppendOutcome:
    status: AppendStatus
    next_seq: int           # the sequence the rental expects next, after this append
    head_hash: bytes | None  # hash of the stored head, after this append


class NodeStorage(ReportStore, MeteringStore):
    """One connection, serialised by a lock; every write is its own durable transaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(
                str(path), isolation_level=None, check_same_thread=False, timeout=30.0
            )
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal" and str(path) != ":memory:":
                raise StorageError(f"{path}: SQLite refused WAL mode (got {mode})")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(SCHEMA)
            self._conn.executescript(METERING_SCHEMA)
            self._migrate_legacy_reports()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open node database {path}: {exc}") from exc
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- transactions -----------------------------------------------------------------------

    def _transaction(self) -> "_Tx":
        return _Tx(self)

    # -- batches ----------------------------------------------------------------------------

    def _head(self, rental: str) -> tuple[int, bytes | None, int | None, bytes | None]:
        row = self._conn.execute(
            "SELECT batch_seq, batch_hash, last_t_ms, gpus_key FROM batches WHERE rental_id=? "
            "ORDER BY batch_seq DESC LIMIT 1",
            (rental,),
        ).fetchone()
        if row is None:
            return 0, None, None, None
        return row[0] + 1, row[1], row[2], row[3]

    def batch_head(self, rental_id: int) -> tuple[int, bytes | None]:
        """(next expected sequence, hash of the last stored batch or None)."""
        with self._lock:
            next_seq, head_hash, _, _ = self._head(str(rental_id))
            return next_seq, head_hash

    def append_batches(self, records: list[BatchRecord]) -> list[AppendOutcome]:
        """Check and append in one transaction (one fsync); one outcome per record, in order."""
        outcomes: list[AppendOutcome] = []
        with self._lock, self._transaction():
            for record in records:
                outcomes.append(self._append_one(record))
        return outcomes

    def _append_one(self, record: BatchRecord) -> AppendOutcome:
        rental = str(record.rental_id)
        next_seq, head_hash, head_last_t, head_gpus = self._head(rental)
        if record.batch_seq < next_seq:
            row = self._conn.execute(
                "SELECT batch_hash FROM batches WHERE rental_id=? AND batch_seq=?",
                (rental, record.batch_seq),
            ).fetchone()
            status = AppendStatus.DUPLICATE if row and row[0] == record.batch_hash else AppendStatus.CONFLICT
            return AppendOutcome(status, next_seq, head_hash)
        if record.batch_seq > next_seq:
            return AppendOutcome(AppendStatus.GAP, next_seq, head_hash)
        expected_prev = head_hash if head_hash is not None else bytes(32)
        if record.prev_hash != expected_prev:
            return AppendOutcome(AppendStatus.BAD_PREV_HASH, next_seq, head_hash)
        if head_last_t is not None and record.first_t_ms < head_last_t:
            return AppendOutcome(AppendStatus.TIME_REGRESSION, next_seq, head_hash)
        if head_gpus is not None and record.gpus_key != head_gpus and not _same_gpus_legacy(head_gpus, record.gpus_key):
            return AppendOutcome(AppendStatus.GPUS_CHANGED, next_seq, head_hash)
        self._conn.execute(
            "INSERT INTO batches (rental_id, batch_seq, batch_hash, prev_hash, first_t_ms, last_t_ms, "
            "gpus_key, body, received_ms) VALUES (?,?,?,?,?,?,?,?,?)",
            # prev_hash is inside the stored body (and equals the previous row's hash): not kept twice
            (rental, record.batch_seq, record.batch_hash, b"", record.first_t_ms,
             record.last_t_ms, record.gpus_key, record.body, record.received_ms),
        )
        return AppendOutcome(AppendStatus.APPENDED, next_seq + 1, record.batch_hash)

    def _stored_rows(self, rental_id: int, start_seq: int, end_seq: int) -> list[tuple[int, bytes, bytes]]:
        with self._lock:
            return self._conn.execute(
                "SELECT batch_seq, batch_hash, body FROM batches WHERE rental_id=? AND batch_seq>=? "
                "AND batch_seq<? ORDER BY batch_seq",
                (str(rental_id), start_seq, end_seq),
            ).fetchall()

    def iter_batch_objects(self, rental_id: int, start_seq: int, end_seq: int) -> Iterator[tuple[int, bytes, TelemetryBatch]]:
        """(batch_seq, batch_hash, batch) for ``start_seq <= batch_seq < end_seq``, in order: the fast
        path (the stored encoding decodes faster than the wire JSON parses)."""
        from oracle.telemetry.codec import decode_batch

        return ((seq, batch_hash, decode_batch(body)) for seq, batch_hash, body in
                self._stored_rows(rental_id, start_seq, end_seq))

    def iter_batch_values(self, rental_id: int, start_seq: int, end_seq: int
                          ) -> Iterator[tuple[int, tuple[GpuInfo, ...], list[tuple[int, ...]]]]:
        """(batch_seq, GPUs, sample value tuples) for ``start_seq <= batch_seq < end_seq``, in order:
        what metering reads, without building batch and sample objects."""
        from oracle.telemetry.codec import decode_gpus_and_values

        for seq, _, body in self._stored_rows(rental_id, start_seq, end_seq):
            yield (seq, *decode_gpus_and_values(body))

    def iter_batches(self, rental_id: int, start_seq: int, end_seq: int) -> Iterator[tuple[int, bytes, bytes]]:
        """(batch_seq, batch_hash, wire bytes) for ``start_seq <= batch_seq < end_seq``, in order: each
        batch's canonical wire JSON as the agent signed it (rebuilt from the stored encoding)."""
        return ((seq, batch_hash, batch.to_wire_bytes()) for seq, batch_hash, batch in
                self.iter_batch_objects(rental_id, start_seq, end_seq))

    def batch_hash(self, rental_id: int, batch_seq: int) -> bytes | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT batch_hash FROM batches WHERE rental_id=? AND batch_seq=?", (str(rental_id), batch_seq)
            ).fetchone()
        return row[0] if row else None

    # -- archive and pruning (oracle.node.archive) -------------------------------------------

    def archive_record(self, rental_id: int) -> tuple[str, int, int, int | None] | None:
        """(file name, batches, archived_ms, pruned_ms) of the rental's archive, if it was archived."""
        with self._lock:
            row = self._conn.execute(
                "SELECT file_name, batches, archived_ms, pruned_ms FROM archives WHERE rental_id=?",
                (str(rental_id),)).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3])

    def record_archive(self, rental_id: int, file_name: str, batches: int, now_ms: int) -> None:
        with self._lock, self._transaction():
            self._conn.execute(
                "INSERT INTO archives (rental_id, file_name, batches, archived_ms) VALUES (?,?,?,?) "
                "ON CONFLICT(rental_id) DO NOTHING", (str(rental_id), file_name, batches, now_ms))

    def prunable(self, archived_before_ms: int) -> list[int]:
        """Rentals archived no later than ``archived_before_ms`` whose batches are still stored."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT rental_id FROM archives WHERE pruned_ms IS NULL AND archived_ms<=?",
                (archived_before_ms,)).fetchall()
        return [int(row[0]) for row in rows]

    def prune_batches(self, rental_id: int, now_ms: int) -> int:
        """Delete an archived rental's batches (one transaction); how many were deleted."""
        rental = str(rental_id)
        with self._lock, self._transaction():
            if self._conn.execute("SELECT 1 FROM archives WHERE rental_id=?", (rental,)).fetchone() is None:
                raise StorageError(f"refusing to prune rental {rental_id}: it was never archived")
            deleted = self._conn.execute("DELETE FROM batches WHERE rental_id=?", (rental,)).rowcount
            self._conn.execute("UPDATE archives SET pruned_ms=? WHERE rental_id=?", (now_ms, rental))
        return deleted

    def probe_write(self) -> None:
        """A durable write and its rollback-free undo: raises StorageError if the database cannot be written."""
        with self._lock, self._transaction():
            self._conn.execute("CREATE TABLE IF NOT EXISTS health_probe (id INTEGER PRIMARY KEY, at_ms INTEGER)")
            self._conn.execute("INSERT OR REPLACE INTO health_probe (id, at_ms) VALUES (1, ?)",
                               (time.time_ns() // 1_000_000,))


def _same_gpus_legacy(stored: bytes, key: bytes) -> bool:
    """A head stored before GPU sets were keyed by 8 bytes of their hash (its key is the JSON)."""
    from oracle.telemetry.batches import keccak

    return len(stored) != 8 and keccak(stored)[:8] == key


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT (durable: synchronous=FULL), ROLLBACK on any error."""

    def __init__(self, storage: NodeStorage) -> None:
        self._conn = storage._conn

    def __enter__(self) -> None:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot begin a transaction: {exc}") from exc

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"node database write failed: {exc}") from exc
            return
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise StorageError(f"node database commit failed: {exc}") from exc


