"""The agent's durable spool: every signed batch is on disk before any node is sent it.

Why SQLite (WAL mode, ``synchronous=FULL``) rather than append-only files with fsync:

- one transaction writes the batch, the new head of the hash chain and one queue entry per node,
  so after a crash the spool is either before or after the batch, never half of it; append-only
  files would need our own framing, torn-tail detection, per-node cursor files and compaction;
- per-node queues with "delivered" and "parked" states are rows, deleted or updated in place;
  a batch body is dropped once every node has it, so the file stays the size of the backlog;
- WAL lets the delivery threads read while the sampling thread writes, and with
  ``synchronous=FULL`` each commit is fsynced: a committed batch survives a power cut, not only
  a process crash. At one batch every ~10 s the fsync is a negligible cost.

Tables: ``chains`` (per rental: agent, next_seq, head_hash, last_t_ms), ``batches`` (rental,
seq, hash, wire body), ``deliveries`` (node, rental, seq, state pending|parked, attempts, last
error). ``rental_id`` is stored as decimal text because it is a uint256.

Limitation: a node first configured after some batches were already delivered everywhere and
dropped gets only the batches still on disk (it cannot be sent what was garbage collected).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from oracle.errors import StorageError
from oracle.telemetry.batches import TelemetryBatch

log = logging.getLogger(__name__)

PENDING = 0
PARKED = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chains (
    rental_id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    next_seq INTEGER NOT NULL,
    head_hash BLOB NOT NULL,
    last_t_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    rental_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    batch_hash BLOB NOT NULL,
    body BLOB NOT NULL,
    spooled_ms INTEGER NOT NULL,
    PRIMARY KEY (rental_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deliveries (
    node TEXT NOT NULL,
    rental_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (node, rental_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_by_state ON deliveries (node, state, rental_id, seq);
"""


@dataclass(frozen=True)
class ChainHead:
    """Where a rental's hash chain stands in the spool."""

    rental_id: int
    agent: str
    next_seq: int
    head_hash: bytes
    last_t_ms: int


@dataclass(frozen=True)
class SpooledBatch:
    """A batch waiting for one node: its identity and the exact bytes to POST."""

    rental_id: int
    seq: int
    batch_hash: bytes
    body: bytes
    attempts: int


class Spool:
    """Durable store of signed batches and of each node's delivery queue. Thread-safe."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open spool {self.path}: {exc}") from exc
        self._lock = threading.Lock()
        self._closed = False

    # -- chain ---------------------------------------------------------------------------------

    def chain_head(self, rental_id: int) -> ChainHead | None:
        row = self._query_one(
            "SELECT agent, next_seq, head_hash, last_t_ms FROM chains WHERE rental_id = ?",
            (str(rental_id),),
        )
        if row is None:
            return None
        return ChainHead(rental_id, row[0], row[1], bytes(row[2]), row[3])

    def append(self, batch: TelemetryBatch, nodes: Iterable[str]) -> None:
        """Store a signed batch and queue it for every node, atomically and durably.

        The batch must extend the rental's chain: ``batch_seq`` is the spool's ``next_seq`` and
        ``prev_hash`` its head (genesis for the first batch), and the agent must not change.
        """
        if batch.signature is None:
            raise StorageError("only signed batches are spooled")
        rental = str(batch.rental_id)
        batch_hash = batch.batch_hash()
        body = batch.to_wire_bytes()
        last_t_ms = max(s.t_ms for s in batch.samples)
        with self._lock:
            self._check_open()
            with self._transaction(f"cannot spool batch {batch.batch_seq}"):
                row = self._db.execute(
                    "SELECT agent, next_seq, head_hash FROM chains WHERE rental_id = ?",
                    (rental,),
                ).fetchone()
                expected = (batch.agent, 0, bytes(32)) if row is None else (
                    row[0], row[1], bytes(row[2]))
                if (batch.agent, batch.batch_seq, batch.prev_hash) != expected:
                    raise StorageError(
                        f"batch {batch.batch_seq} of rental {rental} does not extend the "
                        f"spooled chain (agent {expected[0]}, next seq {expected[1]}, "
                        f"head 0x{expected[2].hex()})"
                    )
                self._db.execute(
                    "INSERT OR REPLACE INTO chains VALUES (?, ?, ?, ?, ?)",
                    (rental, batch.agent, batch.batch_seq + 1, batch_hash, last_t_ms),
                )
                self._db.execute(
                    "INSERT INTO batches VALUES (?, ?, ?, ?, ?)",
                    (rental, batch.batch_seq, batch_hash, body, time.time_ns() // 10**6),
                )
                self._db.executemany(
                    "INSERT INTO deliveries (node, rental_id, seq) VALUES (?, ?, ?)",
                    [(node, rental, batch.batch_seq) for node in nodes],
                )

    # -- delivery queues -----------------------------------------------------------------------

    def next_pending(self, node: str) -> SpooledBatch | None:
        """The oldest batch not yet delivered to (nor parked for) ``node``."""
        row = self._query_one(
            "SELECT d.rental_id, d.seq, b.batch_hash, b.body, d.attempts FROM deliveries d "
            "JOIN batches b ON b.rental_id = d.rental_id AND b.seq = d.seq "
            "WHERE d.node = ? AND d.state = ? ORDER BY d.rental_id, d.seq LIMIT 1",
            (node, PENDING),
        )
        if row is None:
            return None
        return SpooledBatch(int(row[0]), row[1], bytes(row[2]), bytes(row[3]), row[4])

    def pending(self, node: str) -> list[tuple[int, int]]:
        """``(rental_id, seq)`` of every batch still queued for ``node``, in delivery order."""
        rows = self._query_all(
            "SELECT rental_id, seq FROM deliveries WHERE node = ? AND state = ? "
            "ORDER BY rental_id, seq",
            (node, PENDING),
        )
        return [(int(r), s) for r, s in rows]

    def pending_count(self, node: str | None = None) -> int:
        if node is None:
            row = self._query_one("SELECT count(*) FROM deliveries WHERE state = ?", (PENDING,))
        else:
            row = self._query_one(
                "SELECT count(*) FROM deliveries WHERE node = ? AND state = ?", (node, PENDING)
            )
        return int(row[0]) if row else 0

    def parked(self, node: str) -> list[tuple[int, int, str | None]]:
        """``(rental_id, seq, last_error)`` of batches that ``node`` refused for good."""
        rows = self._query_all(
            "SELECT rental_id, seq, last_error FROM deliveries WHERE node = ? AND state = ? "
            "ORDER BY rental_id, seq",
            (node, PARKED),
        )
        return [(int(r), s, e) for r, s, e in rows]

    def nodes(self) -> list[str]:
        """Every node with a queued or parked batch."""
        return [r[0] for r in self._query_all("SELECT DISTINCT node FROM deliveries", ())]

    def mark_delivered(self, node: str, rental_id: int, seq: int) -> None:
        """Drop ``node``'s queue entry; drop the body once no node still needs it."""
        rental = str(rental_id)
        self._write(
            [
                ("DELETE FROM deliveries WHERE node = ? AND rental_id = ? AND seq = ?",
                 (node, rental, seq)),
                ("DELETE FROM batches WHERE rental_id = ? AND seq = ? AND NOT EXISTS "
                 "(SELECT 1 FROM deliveries WHERE rental_id = ? AND seq = ?)",
                 (rental, seq, rental, seq)),
            ]
        )

    def record_failure(self, node: str, rental_id: int, seq: int, error: str) -> None:
        self._write(
            [
                ("UPDATE deliveries SET attempts = attempts + 1, last_error = ? "
                 "WHERE node = ? AND rental_id = ? AND seq = ?",
                 (error[:500], node, str(rental_id), seq)),
            ]
        )

    def park(self, node: str, rental_id: int, seq: int, error: str) -> None:
        """Set a batch aside for ``node`` (it refused it); kept on disk for inspection."""
        self._write(
            [
                ("UPDATE deliveries SET state = ?, attempts = attempts + 1, last_error = ? "
                 "WHERE node = ? AND rental_id = ? AND seq = ?",
                 (PARKED, error[:500], node, str(rental_id), seq)),
            ]
        )

    def requeue_parked(self, node: str) -> int:
        """Put ``node``'s parked batches back in its queue (after the cause was fixed)."""
        with self._lock:
            self._check_open()
            try:
                cursor = self._db.execute(
                    "UPDATE deliveries SET state = ? WHERE node = ? AND state = ?",
                    (PENDING, node, PARKED),
                )
            except sqlite3.Error as exc:
                raise StorageError(f"spool write failed: {exc}") from exc
            return cursor.rowcount

    def requeue_parked_before(self, node: str, rental_id: int, seq: int, reason: str) -> int:
        """Requeue ``node``'s parked batches of the rental from ``seq`` on that it refused with
        ``reason`` (a reason the node may have stopped giving: "stale" before it caught up)."""
        with self._lock:
            self._check_open()
            try:
                cursor = self._db.execute(
                    "UPDATE deliveries SET state = ? WHERE node = ? AND rental_id = ? AND seq >= ? AND state = ? "
                    "AND last_error LIKE ?",
                    (PENDING, node, str(rental_id), seq, PARKED, f'%"reason":"{reason}"%'),
                )
            except sqlite3.Error as exc:
                raise StorageError(f"spool write failed: {exc}") from exc
            return cursor.rowcount

    def ensure_node(self, node: str, rental_id: int) -> int:
        """Queue for a newly configured ``node`` every batch of the rental still on disk.

        Does nothing for a node that already has entries (queued or parked) or when the rental
        has no batches yet. Returns how many entries were added.
        """
        rental = str(rental_id)
        with self._lock:
            self._check_open()
            try:
                known = self._db.execute(
                    "SELECT 1 FROM deliveries WHERE node = ? AND rental_id = ? LIMIT 1",
                    (node, rental),
                ).fetchone()
                head = self._db.execute(
                    "SELECT next_seq FROM chains WHERE rental_id = ?", (rental,)
                ).fetchone()
                if known is not None or head is None:
                    return 0
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO deliveries (node, rental_id, seq) "
                    "SELECT ?, rental_id, seq FROM batches WHERE rental_id = ?",
                    (node, rental),
                )
            except sqlite3.Error as exc:
                raise StorageError(f"spool write failed: {exc}") from exc
            added = cursor.rowcount
        if added < head[0]:
            log.warning(
                "node %s joins rental %s at a later batch: %d of %d batches are still spooled",
                node, rental, added, head[0],
            )
        return added

    def stored_batches(self, rental_id: int) -> list[bytes]:
        """Wire bodies still on disk for the rental, in order (for tests and inspection)."""
        rows = self._query_all(
            "SELECT body FROM batches WHERE rental_id = ? ORDER BY seq", (str(rental_id),)
        )
        return [bytes(r[0]) for r in rows]

    # -- plumbing ------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"spool {self.path} is closed")

    def _query_one(self, sql: str, args: tuple) -> tuple | None:
        with self._lock:
            self._check_open()
            try:
                return self._db.execute(sql, args).fetchone()
            except sqlite3.Error as exc:
                raise StorageError(f"spool read failed: {exc}") from exc

    def _query_all(self, sql: str, args: tuple) -> list[tuple]:
        with self._lock:
            self._check_open()
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"spool read failed: {exc}") from exc

    def _write(self, statements: list[tuple[str, tuple]]) -> None:
        with self._lock:
            self._check_open()
            with self._transaction("spool write failed"):
                for sql, args in statements:
                    self._db.execute(sql, args)

    @contextmanager
    def _transaction(self, failure: str) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, ROLLBACK on any error; a SQLite error becomes
        ``StorageError("<failure>: <error>")``. The caller holds ``self._lock``."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError(f"{failure}: {exc}") from exc
