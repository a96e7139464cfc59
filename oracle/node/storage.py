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
"""

from __future__ import annotations

import asyncio
import enum
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from oracle.errors import SigningError, StorageError
from oracle.telemetry.batches import TelemetryBatch
from oracle.node.errors import ReportConflict

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

# The metering core's checkpoints (oracle.metering.state.MeterState, canonical JSON) per
# (rental, sequence), valid under ``terms_key`` only; and rental terms beyond the ``rentals``
# columns (model, power limit, SLA, end) as canonical JSON.
METERING_SCHEMA = """
CREATE TABLE IF NOT EXISTS meter_checkpoints (
    rental_id   TEXT    NOT NULL,
    sequence    INTEGER NOT NULL,
    terms_key   TEXT    NOT NULL,
    state       BLOB    NOT NULL,
    PRIMARY KEY (rental_id, sequence)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rental_terms (
    rental_id   TEXT    PRIMARY KEY,
    body        TEXT    NOT NULL
);
"""

#: Checkpoints kept per rental: the newest two, and every sequence divisible by this (so
#: metering an old, unrecorded sequence replays fewer than this many batches).
CHECKPOINT_KEEP_EVERY = 64

REPORT_KEYS = {"usage": "sequence", "fault": "fault_id"}

# Databases written before reports were keyed by signer-set version: their rows move into
# ``signed_reports`` once, under the version their recorded body names (no row is lost).
_LEGACY_REPORT_TABLES = (("usage", "reports", "sequence"), ("fault", "fault_reports", "fault_id"))


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


@dataclass(frozen=True, slots=True)
class RecordedReport:
    kind: str
    rental_id: int
    key: int  # sequence (usage) or fault_id (fault)
    digest: bytes
    body: bytes
    signature: bytes | None
    version: int = 0  # the signer-set version the report is for


class NodeStorage:
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

    def iter_batch_objects(self, rental_id: int, start_seq: int, end_seq: int) -> Iterator[tuple[int, bytes, "TelemetryBatch"]]:
        """(batch_seq, batch_hash, batch) for ``start_seq <= batch_seq < end_seq``, in order: the fast
        path (the stored encoding decodes faster than the wire JSON parses)."""
        from oracle.telemetry.codec import decode_batch

        return ((seq, batch_hash, decode_batch(body)) for seq, batch_hash, body in
                self._stored_rows(rental_id, start_seq, end_seq))

    def iter_batch_values(self, rental_id: int, start_seq: int, end_seq: int
                          ) -> Iterator[tuple[int, tuple["GpuInfo", ...], list[tuple[int, ...]]]]:
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

    # -- reports: record before sign --------------------------------------------------------

    def _migrate_legacy_reports(self) -> None:
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for kind, table, key_column in _LEGACY_REPORT_TABLES:
            if table not in tables:
                continue
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    f"INSERT OR IGNORE INTO signed_reports (kind, rental_id, signer_set_version, key, digest, body, "
                    f"signature, created_ms, signed_ms) SELECT ?, rental_id, "
                    f"COALESCE(json_extract(body, '$.signer_set_version'), 0), {key_column}, digest, body, signature, "
                    f"created_ms, signed_ms FROM {table}", (kind,))
                self._conn.execute(f"DROP TABLE {table}")
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def record_report(self, kind: str, rental_id: int, key: int, digest: bytes, body: bytes, now_ms: int,
                      version: int = 0) -> RecordedReport:
        """Durably record the report about to be signed, or return the identical one already there.

        Raises :class:`ReportConflict` if a different report is recorded under the same key
        (``kind``, ``rental_id``, ``version``, ``key``).
        """
        key_column = REPORT_KEYS[kind]
        rental = str(rental_id)
        existing = self.get_report(kind, rental_id, key, version)
        if existing is None:  # only a new report costs a write transaction
            with self._lock, self._transaction():
                self._conn.execute(
                    "INSERT OR IGNORE INTO signed_reports (kind, rental_id, signer_set_version, key, digest, body, "
                    "created_ms) VALUES (?,?,?,?,?,?,?)",
                    (kind, rental, version, key, digest, body, now_ms),
                )
            existing = self.get_report(kind, rental_id, key, version)
        assert existing is not None
        if existing.digest != digest:  # the digest is what a signature covers
            raise ReportConflict(
                f"refusing to sign: a different {kind} report is already recorded for rental {rental_id} "
                f"{key_column} {key} of signer set v{version} (recorded digest 0x{existing.digest.hex()}, "
                f"asked 0x{digest.hex()})"
            )
        return existing

    def get_report(self, kind: str, rental_id: int, key: int, version: int | None = None) -> RecordedReport | None:
        """The report recorded under the key; ``version=None``: the one of the highest version."""
        with self._lock:
            if version is None:
                row = self._conn.execute(
                    "SELECT digest, body, signature, signer_set_version FROM signed_reports WHERE kind=? AND "
                    "rental_id=? AND key=? ORDER BY signer_set_version DESC LIMIT 1",
                    (kind, str(rental_id), key),
                ).fetchone()
            else:
                row = self._conn.execute(
                    "SELECT digest, body, signature, signer_set_version FROM signed_reports WHERE kind=? AND "
                    "rental_id=? AND signer_set_version=? AND key=?",
                    (kind, str(rental_id), version, key),
                ).fetchone()
        return None if row is None else RecordedReport(kind, rental_id, key, row[0], row[1], row[2], row[3])

    def report_with_digest(self, kind: str, rental_id: int, key: int, digest: bytes) -> RecordedReport | None:
        """The report recorded under the key, for whichever signer-set version, with this digest."""
        with self._lock:
            row = self._conn.execute(
                "SELECT digest, body, signature, signer_set_version FROM signed_reports WHERE kind=? AND "
                "rental_id=? AND key=? AND digest=?",
                (kind, str(rental_id), key, digest),
            ).fetchone()
        return None if row is None else RecordedReport(kind, rental_id, key, row[0], row[1], row[2], row[3])

    def recorded_reports(self, kind: str, rental_id: int, version: int, from_key: int,
                         limit: int) -> list[RecordedReport]:
        """Reports recorded for ``version`` with ``from_key <= key``, in key order, at most ``limit``."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT key, digest, body, signature FROM signed_reports WHERE kind=? AND rental_id=? AND "
                "signer_set_version=? AND key>=? ORDER BY key LIMIT ?",
                (kind, str(rental_id), version, from_key, limit),
            ).fetchall()
        return [RecordedReport(kind, rental_id, r[0], r[1], r[2], r[3], version) for r in rows]

    def sign_recorded(
        self, kind: str, rental_id: int, key: int, digest: bytes, sign: Callable[[bytes], bytes], now_ms: int,
        version: int = 0,
    ) -> bytes:
        """Sign ``digest`` only if it is the report recorded under the key; store the signature.

        Never signs anything that was not recorded first, nor a digest other than the recorded one.
        """
        key_column = REPORT_KEYS[kind]
        with self._lock:
            recorded = self.get_report(kind, rental_id, key, version)
            if recorded is None:
                raise SigningError(f"refusing to sign a {kind} report that was not recorded first "
                                   f"(rental {rental_id}, {key_column} {key}, signer set v{version})")
            if recorded.digest != digest:
                raise ReportConflict(
                    f"refusing to sign: rental {rental_id} {key_column} {key} (signer set v{version}) is recorded "
                    f"with digest 0x{recorded.digest.hex()}, asked 0x{digest.hex()}"
                )
            if recorded.signature is not None:
                return recorded.signature
            signature = sign(digest)
            with self._transaction():
                self._conn.execute(
                    "UPDATE signed_reports SET signature=?, signed_ms=? WHERE kind=? AND rental_id=? AND "
                    "signer_set_version=? AND key=? AND digest=? AND signature IS NULL",
                    (signature, now_ms, kind, str(rental_id), version, key, digest),
                )
            return signature

    # -- rentals ----------------------------------------------------------------------------

    def get_rental(self, rental_id: int) -> tuple | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT rental_id, agent, gpu_count, region, grid_intensity_g_per_kwh, start_ms FROM rentals "
                "WHERE rental_id=?",
                (str(rental_id),),
            ).fetchone()
        return None if row is None else (int(row[0]), *row[1:])

    def put_rental(self, rental_id: int, agent: str, gpu_count: int, region: str, grid: int, start_ms: int) -> None:
        with self._lock, self._transaction():
            self._conn.execute(
                "INSERT INTO rentals (rental_id, agent, gpu_count, region, grid_intensity_g_per_kwh, start_ms) "
                "VALUES (?,?,?,?,?,?) ON CONFLICT(rental_id) DO UPDATE SET agent=excluded.agent, "
                "gpu_count=excluded.gpu_count, region=excluded.region, "
                "grid_intensity_g_per_kwh=excluded.grid_intensity_g_per_kwh, start_ms=excluded.start_ms",
                (str(rental_id), agent, gpu_count, region, grid, start_ms),
            )


    # -- metering checkpoints and rental terms ---------------------------------------------------

    def put_checkpoint(self, rental_id: int, sequence: int, terms_key: str, state: bytes) -> None:
        """Store the meter state after ``sequence`` batches; prune all but the newest two and
        every ``CHECKPOINT_KEEP_EVERY``-th (a checkpoint is a cache: losing one costs CPU only)."""
        rental = str(rental_id)
        with self._lock, self._transaction():
            self._conn.execute(
                "INSERT OR REPLACE INTO meter_checkpoints (rental_id, sequence, terms_key, state) VALUES (?,?,?,?)",
                (rental, sequence, terms_key, state),
            )
            self._conn.execute(
                "DELETE FROM meter_checkpoints WHERE rental_id=? AND sequence % ? != 0 AND sequence < ("
                "SELECT MIN(sequence) FROM (SELECT sequence FROM meter_checkpoints WHERE rental_id=? "
                "ORDER BY sequence DESC LIMIT 2))",
                (rental, CHECKPOINT_KEEP_EVERY, rental),
            )

    def checkpoint_at_most(self, rental_id: int, sequence: int, terms_key: str) -> tuple[int, bytes] | None:
        """The newest checkpoint at or below ``sequence`` made under ``terms_key``."""
        with self._lock:
            row = self._conn.execute(
                "SELECT sequence, state FROM meter_checkpoints WHERE rental_id=? AND sequence<=? AND terms_key=? "
                "ORDER BY sequence DESC LIMIT 1",
                (str(rental_id), sequence, terms_key),
            ).fetchone()
        return None if row is None else (row[0], row[1])

    def batch_seqs_overlapping(self, rental_id: int, from_ms: int, to_ms: int, below_seq: int) -> tuple[int, int] | None:
        """(first, last) sequence below ``below_seq`` of the batches with samples in
        ``[from_ms, to_ms)``, or None (batches are time-ordered, so the range is contiguous)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT MIN(batch_seq), MAX(batch_seq) FROM batches WHERE rental_id=? AND batch_seq<? "
                "AND last_t_ms>=? AND first_t_ms<?",
                (str(rental_id), below_seq, from_ms, to_ms),
            ).fetchone()
        return None if row is None or row[0] is None else (row[0], row[1])

    def get_rental_terms(self, rental_id: int) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT body FROM rental_terms WHERE rental_id=?", (str(rental_id),)).fetchone()
        return None if row is None else row[0]

    def put_rental_terms(self, rental_id: int, body: str) -> None:
        with self._lock, self._transaction():
            self._conn.execute(
                "INSERT INTO rental_terms (rental_id, body) VALUES (?,?) ON CONFLICT(rental_id) DO UPDATE SET "
                "body=excluded.body",
                (str(rental_id), body),
            )


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


class GroupCommitWriter:
    """Appends the batches of many concurrent requests in one transaction (one fsync).

    ``await writer.append(record)`` returns once the record's transaction is durable. While one
    commit runs (in a worker thread, off the event loop), newly arriving records queue up and
    go into the next commit together: one thread hand-off and one fsync per group instead of
    per request. Bounded: beyond ``max_pending`` waiting records, ``append`` refuses with
    :class:`StorageError` (the agent retries later).
    """

    def __init__(self, storage: NodeStorage, max_group: int = 256, max_pending: int = 4096) -> None:
        self._storage = storage
        self._max_group = max_group
        self._max_pending = max_pending
        self._pending: list[tuple[BatchRecord, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    async def append(self, record: BatchRecord) -> AppendOutcome:
        if len(self._pending) >= self._max_pending:
            raise StorageError("ingest queue full; retry later")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((record, future))
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                group = self._pending[: self._max_group]
                del self._pending[: self._max_group]
                try:
                    outcomes = await asyncio.to_thread(self._storage.append_batches, [r for r, _ in group])
                except Exception as exc:  # resolve every waiter, whatever went wrong
                    error = exc if isinstance(exc, StorageError) else StorageError(str(exc))
                    for _, future in group:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for (_, future), outcome in zip(group, outcomes):
                    if not future.done():  # a waiter whose client went away is simply skipped
                        future.set_result(outcome)
        finally:
            self._flusher = None

    def close(self) -> None:
        """Nothing to stop: an in-flight commit finishes in its worker thread."""
