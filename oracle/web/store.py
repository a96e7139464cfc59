"""The web app's event index: SQLite at ``<data dir>/web-index.sqlite``.

Two kinds of tables:

- ``events``: every delivered contract log, keyed by (block, log_index) with its source
  (``market`` or ``timelock``), its decoded arguments and ``extra``: what the indexer read from
  the chain *at that log's block* for it (the settlement calldata's reports and signers, the
  provider's stake, the rental as stored). Rows are written once; a redelivery is ignored.
- derived tables (offers, rentals, settlements, slashes, providers, ledger, timelock_ops, kv):
  a pure function of ``events`` (:mod:`oracle.web.derive`), updated event by event in the same
  transaction that stores the event.

A reorg rewind deletes the source's events at or above the first invalid block and rebuilds the
derived tables by replaying ``events`` (no chain reads), so the index never keeps anything a
reorganised block said. Pages read the derived tables through their own connections (WAL).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator

from oracle.web import derive, schema

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    block      INTEGER NOT NULL,
    log_index  INTEGER NOT NULL,
    source     TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    tx_hash    TEXT    NOT NULL,
    ts         INTEGER,
    args       TEXT    NOT NULL,
    extra      TEXT    NOT NULL,
    PRIMARY KEY (block, log_index)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_source_block ON events (source, block);
CREATE TABLE IF NOT EXISTS status (
    source     TEXT PRIMARY KEY,
    last_block INTEGER NOT NULL,
    head_block INTEGER NOT NULL,
    head_ts    INTEGER,
    rewinds    INTEGER NOT NULL DEFAULT 0
);
"""


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    path = str(path)
    if readonly and path != ":memory:":
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=30.0)
    else:
        conn = sqlite3.connect(path, check_same_thread=False, timeout=30.0, isolation_level=None)
        if path != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.row_factory = sqlite3.Row
    return conn


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class IndexStore:
    """The writer side of the index (one connection, serialised by a lock)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = connect(self.path)
        self.lock = threading.RLock()
        self.generation = 0  # bumped by every write: readers cache by it
        with self.lock:
            self.conn.executescript(SCHEMA)
            version = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
            if version != schema.SCHEMA_VERSION:  # derived tables of another layout: rebuild from events
                for table in schema.DERIVED_TABLES:
                    self.conn.execute(f"DROP TABLE IF EXISTS {table}")
            self.conn.executescript(schema.SCHEMA)
            if version != schema.SCHEMA_VERSION:
                self.rebuild()
                self.conn.execute(f"PRAGMA user_version={int(schema.SCHEMA_VERSION)}")

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def reader(self) -> sqlite3.Connection:
        """A new connection for queries (the in-memory store shares its one connection)."""
        if self.path == ":memory:":
            return self.conn
        return connect(self.path)

    # ------------------------------------------------------------------ writing
    def add_event(self, *, source: str, name: str, block: int, log_index: int, tx_hash: str,
                  ts: int | None, args: dict[str, Any], extra: dict[str, Any]) -> bool:
        """Store one event and apply it to the derived tables, atomically. False if already stored."""
        row = {"source": source, "name": name, "block": block, "log_index": log_index, "tx_hash": tx_hash,
               "ts": ts, "args": args, "extra": extra}
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                cur = self.conn.execute(
                    "INSERT OR IGNORE INTO events (block, log_index, source, name, tx_hash, ts, args, extra) "
                    "VALUES (?,?,?,?,?,?,?,?)",
                    (block, log_index, source, name, tx_hash, ts, dumps(args), dumps(extra)),
                )
                if cur.rowcount == 1:
                    derive.apply(self.conn, row)
                self.conn.execute("COMMIT")
                self.generation += 1
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        return cur.rowcount == 1

    def add_events(self, rows: list[dict[str, Any]]) -> int:
        """Many events in one transaction (the benchmark's bulk load); same path as add_event."""
        added = 0
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                for row in rows:
                    cur = self.conn.execute(
                        "INSERT OR IGNORE INTO events (block, log_index, source, name, tx_hash, ts, args, extra) "
                        "VALUES (?,?,?,?,?,?,?,?)",
                        (row["block"], row["log_index"], row["source"], row["name"], row["tx_hash"],
                         row.get("ts"), dumps(row["args"]), dumps(row.get("extra") or {})),
                    )
                    if cur.rowcount == 1:
                        derive.apply(self.conn, {**row, "extra": row.get("extra") or {}})
                        added += 1
                self.conn.execute("COMMIT")
                self.generation += 1
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        return added

    def set_status(self, source: str, last_block: int, head_block: int, head_ts: int | None) -> None:
        with self.lock:
            self.conn.execute(
                "INSERT INTO status (source, last_block, head_block, head_ts) VALUES (?,?,?,?) "
                "ON CONFLICT(source) DO UPDATE SET last_block=excluded.last_block, head_block=excluded.head_block, "
                "head_ts=COALESCE(excluded.head_ts, status.head_ts)",
                (source, last_block, head_block, head_ts),
            )

    def rewind(self, source: str, first_invalid_block: int) -> int:
        """Forget ``source``'s events at or above the block and rebuild the derived tables."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                cur = self.conn.execute("DELETE FROM events WHERE source=? AND block>=?", (source, first_invalid_block))
                dropped = cur.rowcount
                self.conn.execute(
                    "INSERT INTO status (source, last_block, head_block, rewinds) VALUES (?,?,?,1) "
                    "ON CONFLICT(source) DO UPDATE SET last_block=MIN(status.last_block, excluded.last_block), "
                    "rewinds=status.rewinds+1",
                    (source, first_invalid_block - 1, first_invalid_block - 1),
                )
                self._replay()
                self.conn.execute("COMMIT")
                self.generation += 1
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        return dropped

    def trim(self, source: str, next_block: int) -> int:
        """Forget ``source``'s events at or above ``next_block`` (the follower's cursor): they will
        be delivered again, and after a crash between a rewind of the cursor and of this store they
        may be a reorganised chain's. Rebuilds the derived tables if anything went."""
        with self.lock:
            count = int(self.conn.execute("SELECT COUNT(*) FROM events WHERE source=? AND block>=?",
                                          (source, next_block)).fetchone()[0])
        if count:
            self.rewind(source, next_block)
        return count

    def rebuild(self) -> None:
        """Rebuild every derived table from the events (after a schema change of derive)."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self._replay()
                self.conn.execute("COMMIT")
                self.generation += 1
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    def _replay(self) -> None:
        derive.clear(self.conn)
        for row in self._events():
            derive.apply(self.conn, row)

    def _events(self) -> Iterator[dict[str, Any]]:
        cur = self.conn.execute(
            "SELECT block, log_index, source, name, tx_hash, ts, args, extra FROM events ORDER BY block, log_index"
        )
        for r in cur.fetchall():
            yield {"block": r["block"], "log_index": r["log_index"], "source": r["source"], "name": r["name"],
                   "tx_hash": r["tx_hash"], "ts": r["ts"], "args": json.loads(r["args"]),
                   "extra": json.loads(r["extra"])}
