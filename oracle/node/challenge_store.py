"""The node's durable record of proof-of-GPU challenges (SQLite, same file as :mod:`storage`).

Tables: ``pog_beacons`` (blocks the schedule was drawn from), ``pog_challenges`` (every
challenge issued), ``pog_answers`` (the agent's commitment and openings, first one wins),
``pog_verdicts`` (this node's verdicts) and ``pog_peer_verdicts`` (what the other nodes said).

The invariant, as for reports: **a verdict is committed durably before anyone sees it, and it
never changes**. :meth:`ChallengeStore.record_verdict` inserts it or finds the one recorded and
refuses (:class:`ReportConflict`) a different one; :meth:`ChallengeStore.sign_verdict` signs only
the recorded verdict and stores the signature.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from oracle.errors import StorageError
from oracle.node.errors import ReportConflict
from oracle.proof.params import END_CHALLENGE_INDEX
from oracle.proof.schedule import Beacon

SCHEMA = """
CREATE TABLE IF NOT EXISTS pog_beacons (
    number INTEGER PRIMARY KEY, hash BLOB NOT NULL, timestamp_s INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pog_challenges (
    id TEXT PRIMARY KEY, rental_id TEXT NOT NULL, idx INTEGER NOT NULL, gpu_index INTEGER NOT NULL,
    beacon_number INTEGER NOT NULL, profile TEXT NOT NULL, issued_at_ms INTEGER NOT NULL,
    commit_deadline_ms INTEGER NOT NULL, open_deadline_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS pog_challenges_rental ON pog_challenges (rental_id, issued_at_ms);
CREATE TABLE IF NOT EXISTS pog_answers (
    id TEXT PRIMARY KEY, digest BLOB NOT NULL, top_root BLOB NOT NULL, gpu_uuid TEXT NOT NULL,
    gpu_serial TEXT NOT NULL, signature BLOB NOT NULL, committed_at_ms INTEGER NOT NULL,
    openings BLOB, opened_at_ms INTEGER, verified INTEGER, verify_reason TEXT);
CREATE TABLE IF NOT EXISTS pog_verdicts (
    id TEXT PRIMARY KEY, rental_id TEXT NOT NULL, gpu_index INTEGER NOT NULL, issued_at_ms INTEGER NOT NULL,
    outcome TEXT NOT NULL, detail TEXT NOT NULL, decided_at_ms INTEGER NOT NULL, signature BLOB);
CREATE TABLE IF NOT EXISTS pog_quorum (
    id TEXT PRIMARY KEY, outcome TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pog_peer_verdicts (
    id TEXT NOT NULL, signer TEXT NOT NULL, outcome TEXT NOT NULL, signature BLOB NOT NULL,
    PRIMARY KEY (id, signer));
"""


@dataclass(frozen=True, slots=True)
class StoredChallenge:
    id: str
    rental_id: int
    index: int
    gpu_index: int
    beacon_number: int
    profile: str
    issued_at_ms: int
    commit_deadline_ms: int
    open_deadline_ms: int


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    id: str
    digest: bytes
    top_root: bytes
    gpu_uuid: str
    gpu_serial: str
    signature: bytes
    committed_at_ms: int
    openings: list | None
    opened_at_ms: int | None
    verified: bool | None
    verify_reason: str | None


@dataclass(frozen=True, slots=True)
class StoredVerdict:
    id: str
    rental_id: int
    gpu_index: int
    issued_at_ms: int
    outcome: str
    detail: str
    decided_at_ms: int
    signature: bytes | None


class ChallengeStore:
    """One connection of its own, serialised by a lock; each write is a durable transaction."""

    def __init__(self, path: str | Path) -> None:
        try:
            self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0)
            if str(path) != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the challenge tables in {path}: {exc}") from exc
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _write(self, sql: str, params: tuple) -> int:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                count = self._conn.execute(sql, params).rowcount
                self._conn.execute("COMMIT")
                return count
            except sqlite3.Error as exc:
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise StorageError(f"challenge store write failed: {exc}") from exc

    def _many(self, sql: str, rows: list[tuple]) -> None:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(sql, rows)
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise StorageError(f"challenge store write failed: {exc}") from exc

    def _rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # -- beacons -------------------------------------------------------------------------------
    def put_beacons(self, beacons: list[Beacon]) -> None:
        self._many("INSERT OR REPLACE INTO pog_beacons (number, hash, timestamp_s) VALUES (?,?,?)",
                   [(b.number, b.hash, b.timestamp_s) for b in beacons])

    def beacons(self, from_number: int = 0) -> list[Beacon]:
        return [Beacon(*row) for row in self._rows(
            "SELECT number, hash, timestamp_s FROM pog_beacons WHERE number >= ? ORDER BY number", (from_number,))]

    def last_beacon(self) -> Beacon | None:
        rows = self._rows("SELECT number, hash, timestamp_s FROM pog_beacons ORDER BY number DESC LIMIT 1")
        return Beacon(*rows[0]) if rows else None

    def beacon(self, number: int) -> Beacon | None:
        rows = self._rows("SELECT number, hash, timestamp_s FROM pog_beacons WHERE number = ?", (number,))
        return Beacon(*rows[0]) if rows else None

    def first_beacon_at_or_after(self, timestamp_s: int) -> Beacon | None:
        rows = self._rows("SELECT number, hash, timestamp_s FROM pog_beacons WHERE timestamp_s >= ? "
                          "ORDER BY number LIMIT 1", (timestamp_s,))
        return Beacon(*rows[0]) if rows else None

    def batches_overlapping(self, rental_id: int, start_ms: int, end_ms: int) -> list[bytes]:
        """Stored bodies of the rental's batches with samples in ``[start_ms, end_ms]`` (the
        ``batches`` table of :mod:`oracle.node.storage`), in sequence order."""
        return [row[0] for row in self._rows(
            "SELECT body FROM batches WHERE rental_id=? AND last_t_ms>=? AND first_t_ms<=? ORDER BY batch_seq",
            (str(rental_id), start_ms, end_ms))]

    def newest_sample_ms(self, rental_id: int) -> int:
        rows = self._rows("SELECT MAX(last_t_ms) FROM batches WHERE rental_id=?", (str(rental_id),))
        return -1 if not rows or rows[0][0] is None else int(rows[0][0])

    def known_rental_ids(self) -> list[int]:
        """The rentals this node meters (the ``rentals`` table of :mod:`oracle.node.storage`)."""
        try:
            return [int(row[0]) for row in self._rows("SELECT rental_id FROM rentals")]
        except sqlite3.Error:
            return []

    # -- challenges ----------------------------------------------------------------------------
    def put_challenges(self, rows: list[StoredChallenge]) -> None:
        self._many("INSERT OR IGNORE INTO pog_challenges (id, rental_id, idx, gpu_index, beacon_number, profile, "
                   "issued_at_ms, commit_deadline_ms, open_deadline_ms) VALUES (?,?,?,?,?,?,?,?,?)",
                   [(c.id, str(c.rental_id), c.index, c.gpu_index, c.beacon_number, c.profile, c.issued_at_ms,
                     c.commit_deadline_ms, c.open_deadline_ms) for c in rows])

    def _challenge(self, row: tuple) -> StoredChallenge:
        return StoredChallenge(row[0], int(row[1]), *row[2:])

    _CHALLENGE_COLUMNS = ("c.id, c.rental_id, c.idx, c.gpu_index, c.beacon_number, c.profile, c.issued_at_ms, "
                          "c.commit_deadline_ms, c.open_deadline_ms")

    def challenge(self, challenge_id: str) -> StoredChallenge | None:
        rows = self._rows(f"SELECT {self._CHALLENGE_COLUMNS} FROM pog_challenges c WHERE c.id = ?", (challenge_id,))
        return self._challenge(rows[0]) if rows else None

    def undecided(self, rental_id: int | None = None) -> list[StoredChallenge]:
        where, params = ("AND c.rental_id = ?", (str(rental_id),)) if rental_id is not None else ("", ())
        rows = self._rows(f"SELECT {self._CHALLENGE_COLUMNS} FROM pog_challenges c LEFT JOIN pog_verdicts v "
                          f"ON v.id = c.id WHERE v.id IS NULL {where} ORDER BY c.issued_at_ms, c.gpu_index", params)
        return [self._challenge(row) for row in rows]

    def rental_challenges(self, rental_id: int) -> list[StoredChallenge]:
        rows = self._rows(f"SELECT {self._CHALLENGE_COLUMNS} FROM pog_challenges c WHERE c.rental_id = ? "
                          "ORDER BY c.issued_at_ms, c.gpu_index", (str(rental_id),))
        return [self._challenge(row) for row in rows]

    def end_challenges(self, rental_id: int) -> list[StoredChallenge]:
        """The rental's end challenge, one per GPU (empty until it is issued), in GPU order."""
        rows = self._rows(f"SELECT {self._CHALLENGE_COLUMNS} FROM pog_challenges c WHERE c.rental_id = ? AND c.idx = ? "
                          "ORDER BY c.gpu_index", (str(rental_id), END_CHALLENGE_INDEX))
        return [self._challenge(row) for row in rows]

    def last_open_deadline_ms(self, rental_id: int, issued_by_ms: int) -> int | None:
        """The latest open deadline among the rental's challenges issued by ``issued_by_ms``."""
        rows = self._rows("SELECT MAX(open_deadline_ms) FROM pog_challenges WHERE rental_id = ? AND issued_at_ms <= ?",
                          (str(rental_id), issued_by_ms))
        return None if not rows or rows[0][0] is None else int(rows[0][0])

    def withdraw_after(self, rental_id: int, end_ms: int) -> int:
        """Delete the rental's undecided challenges issued after ``end_ms`` (never its end
        challenge); how many."""
        return self._write("DELETE FROM pog_challenges WHERE rental_id=? AND issued_at_ms>? AND idx<>? AND id NOT IN "
                           "(SELECT id FROM pog_verdicts)", (str(rental_id), end_ms, END_CHALLENGE_INDEX))

    # -- answers -------------------------------------------------------------------------------
    def record_commitment(self, challenge_id: str, digest: bytes, top_root: bytes, gpu_uuid: str,
                          gpu_serial: str, signature: bytes, at_ms: int) -> StoredAnswer:
        """Record the first commitment; return the recorded one (the caller compares)."""
        self._write("INSERT OR IGNORE INTO pog_answers (id, digest, top_root, gpu_uuid, gpu_serial, signature, "
                    "committed_at_ms) VALUES (?,?,?,?,?,?,?)",
                    (challenge_id, digest, top_root, gpu_uuid, gpu_serial, signature, at_ms))
        answer = self.answer(challenge_id)
        assert answer is not None
        return answer

    def record_openings(self, challenge_id: str, openings: list, at_ms: int, verified: bool, reason: str) -> bool:
        """Record the first openings of a committed challenge; False if there already were some."""
        return self._write("UPDATE pog_answers SET openings=?, opened_at_ms=?, verified=?, verify_reason=? "
                           "WHERE id=? AND openings IS NULL",
                           (json.dumps(openings).encode(), at_ms, int(verified), reason, challenge_id)) == 1

    def answer(self, challenge_id: str) -> StoredAnswer | None:
        rows = self._rows("SELECT id, digest, top_root, gpu_uuid, gpu_serial, signature, committed_at_ms, openings, "
                          "opened_at_ms, verified, verify_reason FROM pog_answers WHERE id = ?", (challenge_id,))
        if not rows:
            return None
        row = rows[0]
        return StoredAnswer(*row[:7], None if row[7] is None else json.loads(row[7]), row[8],
                            None if row[9] is None else bool(row[9]), row[10])

    # -- verdicts: record before publishing ------------------------------------------------------
    def record_verdict(self, challenge: StoredChallenge, outcome: str, detail: str, at_ms: int) -> StoredVerdict:
        """Durably record this node's verdict, or return the identical one already recorded.

        Raises :class:`ReportConflict` if a different outcome is recorded for the challenge."""
        self._write("INSERT OR IGNORE INTO pog_verdicts (id, rental_id, gpu_index, issued_at_ms, outcome, detail, "
                    "decided_at_ms) VALUES (?,?,?,?,?,?,?)",
                    (challenge.id, str(challenge.rental_id), challenge.gpu_index, challenge.issued_at_ms, outcome,
                     detail, at_ms))
        recorded = self.verdict(challenge.id)
        assert recorded is not None
        if recorded.outcome != outcome:
            raise ReportConflict(f"challenge {challenge.id} already judged {recorded.outcome}; refusing {outcome}")
        return recorded

    def verdict(self, challenge_id: str) -> StoredVerdict | None:
        rows = self._rows("SELECT id, rental_id, gpu_index, issued_at_ms, outcome, detail, decided_at_ms, signature "
                          "FROM pog_verdicts WHERE id = ?", (challenge_id,))
        return StoredVerdict(rows[0][0], int(rows[0][1]), *rows[0][2:]) if rows else None

    def sign_verdict(self, challenge_id: str, digest_of: Callable[[StoredVerdict], bytes],
                     sign: Callable[[bytes], bytes]) -> StoredVerdict:
        """Sign the recorded verdict (only it) once; store and return it with its signature."""
        with self._lock:
            recorded = self.verdict(challenge_id)
            if recorded is None:
                raise StorageError(f"refusing to sign a verdict that was not recorded first ({challenge_id})")
            if recorded.signature is None:
                signature = sign(digest_of(recorded))
                self._write("UPDATE pog_verdicts SET signature=? WHERE id=? AND outcome=? AND signature IS NULL",
                            (signature, challenge_id, recorded.outcome))
                recorded = self.verdict(challenge_id)
            return recorded

    def rental_verdicts(self, rental_id: int) -> list[StoredVerdict]:
        rows = self._rows("SELECT id, rental_id, gpu_index, issued_at_ms, outcome, detail, decided_at_ms, signature "
                          "FROM pog_verdicts WHERE rental_id = ? ORDER BY issued_at_ms, gpu_index", (str(rental_id),))
        return [StoredVerdict(row[0], int(row[1]), *row[2:]) for row in rows]

    def put_peer_verdict(self, challenge_id: str, signer: str, outcome: str, signature: bytes) -> None:
        self._write("INSERT OR IGNORE INTO pog_peer_verdicts (id, signer, outcome, signature) VALUES (?,?,?,?)",
                    (challenge_id, signer, outcome, signature))

    def put_quorum(self, challenge_id: str, outcome: str) -> None:
        """The outcome a quorum agreed on (final: with a threshold above half the set, no other
        outcome can reach it)."""
        self._write("INSERT OR IGNORE INTO pog_quorum (id, outcome) VALUES (?,?)", (challenge_id, outcome))

    def quorum(self, challenge_id: str) -> str | None:
        rows = self._rows("SELECT outcome FROM pog_quorum WHERE id = ?", (challenge_id,))
        return rows[0][0] if rows else None

    def awaiting_quorum(self) -> list[str]:
        """Challenges this node has judged that no quorum has decided yet (what to ask peers about)."""
        return [row[0] for row in self._rows(
            "SELECT v.id FROM pog_verdicts v LEFT JOIN pog_quorum q ON q.id = v.id WHERE q.id IS NULL "
            "ORDER BY v.decided_at_ms")]

    def peer_verdicts(self, challenge_id: str) -> dict[str, str]:
        return dict(self._rows("SELECT signer, outcome FROM pog_peer_verdicts WHERE id = ?", (challenge_id,)))
