"""The transaction journal (issue 11): every transaction an action signs is written here, with
its raw bytes, hash and nonce, BEFORE it is sent. An interrupted command (Ctrl-C, a killed
process, a lost connection) therefore leaves a record of what may be on its way, and running the
same command again finds it instead of sending a duplicate.

One SQLite file per chain and market: ``$GPURENT_HOME/journal/<chainid>-<market>.sqlite``
(``<chainid>-deploy.sqlite`` for deployments). Each command is an *intent* (a key naming what was
asked: action, account, arguments); each run of it an *attempt*; each transaction a *step* of
the attempt. An attempt stays ``open`` until the command has its result (then ``done``) or the
chain refused it (``failed``): only an open attempt is resumed. The journal also keeps the hash
of the chain's genesis block: a journal made against another chain that reused the id (a new
local anvil) is set aside rather than resumed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from oracle.deployment import gpurent_home

OPEN, DONE, FAILED = "open", "done", "failed"
SIGNED, MINED, REVERTED, DROPPED = "signed", "mined", "reverted", "dropped"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (
    intent TEXT NOT NULL, attempt INTEGER NOT NULL, state TEXT NOT NULL, action TEXT NOT NULL,
    account TEXT NOT NULL, summary TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (intent, attempt));
CREATE TABLE IF NOT EXISTS txs (
    intent TEXT NOT NULL, attempt INTEGER NOT NULL, step TEXT NOT NULL, final INTEGER NOT NULL,
    label TEXT NOT NULL, function TEXT NOT NULL, sender TEXT NOT NULL, nonce INTEGER NOT NULL,
    base TEXT NOT NULL, fees TEXT NOT NULL, raw TEXT NOT NULL, hashes TEXT NOT NULL,
    status TEXT NOT NULL, mined_hash TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (intent, attempt, step));
"""


def journal_path(chain_id: int, market: str | None, home: Path | None = None) -> Path:
    name = f"{int(chain_id)}-{(market or 'deploy').lower()}.sqlite"
    return (home or gpurent_home()) / "journal" / name


@dataclass(frozen=True)
class JournalTx:
    intent: str
    attempt: int
    step: str
    final: bool
    label: str
    function: str
    sender: str
    nonce: int
    base: dict[str, Any]
    fees: dict[str, int]
    raw: str
    hashes: list[str]
    status: str
    mined_hash: str | None
    created_at: float

    @property
    def tx_hash(self) -> str:
        return self.mined_hash or self.hashes[-1]


@dataclass(frozen=True)
class Attempt:
    intent: str
    attempt: int
    state: str
    action: str
    account: str
    summary: str
    created_at: float


class Journal:
    """The journal file of one chain (and market); safe to share between threads of a process."""

    def __init__(self, path: str | os.PathLike[str], *, genesis: str | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = self._open()
        if genesis is not None:
            self._check_genesis(genesis)

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # a record must survive the process dying right after
        db.executescript(_SCHEMA)
        return db

    def _check_genesis(self, genesis: str) -> None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key='genesis'").fetchone()
            if row is not None and row[0] != genesis:
                # Another chain under the same id (a fresh local anvil): keep the old file aside.
                self._db.close()
                aside = self.path.with_name(f"{self.path.stem}.other-chain-{int(time.time())}.sqlite")
                os.replace(self.path, aside)
                for suffix in ("-wal", "-shm"):
                    extra = Path(str(self.path) + suffix)
                    if extra.exists():
                        os.replace(extra, Path(str(aside) + suffix))
                self._db = self._open()
                row = None
            if row is None:
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('genesis', ?)", (genesis,))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- attempts --------------------------------------------------------------------------------
    def begin(self, intent: str, *, action: str, account: str, summary: str = "") -> Attempt:
        """The open attempt of ``intent`` (an interrupted run), or a new one."""
        now = time.time()
        with self._lock:
            row = self._db.execute("SELECT attempt, state FROM attempts WHERE intent=? ORDER BY attempt DESC LIMIT 1",
                                   (intent,)).fetchone()
            if row is not None and row[1] == OPEN:
                return self._attempt(intent, int(row[0]))
            number = 1 if row is None else int(row[0]) + 1
            self._db.execute("INSERT INTO attempts VALUES (?,?,?,?,?,?,?,?)",
                             (intent, number, OPEN, action, account, summary, now, now))
            return self._attempt(intent, number)

    def _attempt(self, intent: str, number: int) -> Attempt:
        row = self._db.execute("SELECT intent, attempt, state, action, account, summary, created_at FROM attempts "
                               "WHERE intent=? AND attempt=?", (intent, number)).fetchone()
        return Attempt(*row)

    def finish(self, attempt: Attempt, state: str) -> None:
        with self._lock:
            self._db.execute("UPDATE attempts SET state=?, updated_at=? WHERE intent=? AND attempt=?",
                             (state, time.time(), attempt.intent, attempt.attempt))

    def attempts(self, *, state: str | None = None, limit: int = 50) -> list[Attempt]:
        query = "SELECT intent, attempt, state, action, account, summary, created_at FROM attempts"
        args: tuple[Any, ...] = ()
        if state is not None:
            query += " WHERE state=?"
            args = (state,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created_at DESC LIMIT ?", (*args, limit)).fetchall()
        return [Attempt(*r) for r in rows]

    # -- transactions ----------------------------------------------------------------------------
    def record(self, attempt: Attempt, *, step: str, final: bool, label: str, function: str, sender: str,
               nonce: int, base: dict[str, Any], fees: dict[str, int], raw: bytes, tx_hash: str) -> None:
        """Write a signed transaction (or its fee-bumped replacement) before it is sent."""
        now = time.time()
        base_json = json.dumps({k: (v.hex() if isinstance(v, (bytes, bytearray)) else v) for k, v in base.items()})
        with self._lock:
            row = self._db.execute("SELECT hashes FROM txs WHERE intent=? AND attempt=? AND step=?",
                                   (attempt.intent, attempt.attempt, step)).fetchone()
            if row is None:
                self._db.execute("INSERT INTO txs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                 (attempt.intent, attempt.attempt, step, int(final), label, function, sender, nonce,
                                  base_json, json.dumps(fees), "0x" + bytes(raw).hex(), json.dumps([tx_hash]),
                                  SIGNED, None, now, now))
            else:
                hashes = json.loads(row[0])
                if tx_hash not in hashes:
                    hashes.append(tx_hash)
                self._db.execute("UPDATE txs SET nonce=?, base=?, fees=?, raw=?, hashes=?, status=?, updated_at=? "
                                 "WHERE intent=? AND attempt=? AND step=?",
                                 (nonce, base_json, json.dumps(fees), "0x" + bytes(raw).hex(), json.dumps(hashes),
                                  SIGNED, now, attempt.intent, attempt.attempt, step))

    def mark(self, attempt: Attempt, step: str, status: str, mined_hash: str | None = None) -> None:
        with self._lock:
            self._db.execute("UPDATE txs SET status=?, mined_hash=COALESCE(?, mined_hash), updated_at=? "
                             "WHERE intent=? AND attempt=? AND step=?",
                             (status, mined_hash, time.time(), attempt.intent, attempt.attempt, step))

    def txs(self, attempt: Attempt) -> list[JournalTx]:
        with self._lock:
            rows = self._db.execute(_TX_SELECT + " WHERE intent=? AND attempt=? ORDER BY created_at",
                                    (attempt.intent, attempt.attempt)).fetchall()
        return [_tx(r) for r in rows]

    def recent_txs(self, limit: int = 20) -> Iterator[JournalTx]:
        with self._lock:
            rows = self._db.execute(_TX_SELECT + " ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
        return (_tx(r) for r in rows)


_TX_SELECT = ("SELECT intent, attempt, step, final, label, function, sender, nonce, base, fees, raw, hashes, status, "
              "mined_hash, created_at FROM txs")


def _tx(row: tuple) -> JournalTx:
    (intent, attempt, step, final, label, function, sender, nonce, base, fees, raw, hashes, status, mined,
     created) = row
    return JournalTx(intent, int(attempt), step, bool(final), label, function, sender, int(nonce), json.loads(base),
                     {k: int(v) for k, v in json.loads(fees).items()}, raw, json.loads(hashes), status, mined,
                     float(created))
