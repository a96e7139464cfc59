"""The event follower's durable state: its cursor, block-hash checkpoints and the rental statuses
it learned, in SQLite (its own tables; it may share a node's database file)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


_SCHEMA = """
CREATE TABLE IF NOT EXISTS chain_follower_cursor (
    follower   TEXT PRIMARY KEY,
    next_block INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chain_follower_checkpoints (
    follower   TEXT    NOT NULL,
    number     INTEGER NOT NULL,
    hash       BLOB    NOT NULL,
    PRIMARY KEY (follower, number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chain_follower_rentals (
    follower   TEXT NOT NULL,
    rental_id  TEXT NOT NULL,
    status     TEXT NOT NULL,
    PRIMARY KEY (follower, rental_id)
) WITHOUT ROWID;
"""


class CursorStore:
    """The follower's cursor and block-hash checkpoints, in SQLite (its own tables).

    It may share the node's database file: it uses its own connection and tables.
    """

    def __init__(self, path: str | Path, keep_checkpoints: int = 512) -> None:
        self.path = str(path)
        self.keep = keep_checkpoints
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        if self.path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def next_block(self, follower: str) -> int | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT next_block FROM chain_follower_cursor WHERE follower=?", (follower,)
            ).fetchone()
        return None if row is None else int(row[0])

    def checkpoints(self, follower: str) -> list[tuple[int, bytes]]:
        """(number, hash), newest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT number, hash FROM chain_follower_checkpoints WHERE follower=? ORDER BY number DESC",
                (follower,),
            ).fetchall()
        return [(int(n), bytes(h)) for n, h in rows]

    def advance(self, follower: str, next_block: int, checkpoints: dict[int, bytes]) -> None:
        """Move the cursor and add checkpoints in one durable transaction; prune old ones."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "INSERT INTO chain_follower_cursor (follower, next_block) VALUES (?, ?) "
                    "ON CONFLICT(follower) DO UPDATE SET next_block=excluded.next_block",
                    (follower, next_block),
                )
                self._conn.executemany(
                    "INSERT OR REPLACE INTO chain_follower_checkpoints (follower, number, hash) VALUES (?,?,?)",
                    [(follower, n, h) for n, h in checkpoints.items()],
                )
                self._conn.execute(
                    "DELETE FROM chain_follower_checkpoints WHERE follower=? AND number NOT IN "
                    "(SELECT number FROM chain_follower_checkpoints WHERE follower=? ORDER BY number DESC LIMIT ?)",
                    (follower, follower, self.keep),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def set_rental_status(self, follower: str, rental_id: int, status: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO chain_follower_rentals (follower, rental_id, status) VALUES (?,?,?) "
                "ON CONFLICT(follower, rental_id) DO UPDATE SET status=excluded.status",
                (follower, str(rental_id), status),
            )

    def rental_statuses(self, follower: str) -> dict[int, str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT rental_id, status FROM chain_follower_rentals WHERE follower=?", (follower,)
            ).fetchall()
        return {int(r): s for r, s in rows}

    def rewind(self, follower: str, next_block: int) -> None:
        """Cursor back to ``next_block``; checkpoints at or above it are forgotten."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "UPDATE chain_follower_cursor SET next_block=? WHERE follower=?", (next_block, follower)
                )
                self._conn.execute(
                    "DELETE FROM chain_follower_checkpoints WHERE follower=? AND number>=?", (follower, next_block)
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
