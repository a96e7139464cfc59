"""Signed reports in the node's database: recorded durably before they are signed, never two
different reports under one key (the invariant of :mod:`oracle.node.storage`).

:class:`ReportStore` is a part of :class:`~oracle.node.storage.NodeStorage` (one connection, one
lock, one transaction helper); it is not used on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from oracle.errors import SigningError
from oracle.node.errors import ReportConflict

REPORT_KEYS = {"usage": "sequence", "fault": "fault_id"}

# Databases written before reports were keyed by signer-set version: their rows move into
# ``signed_reports`` once, under the version their recorded body names (no row is lost).
_LEGACY_REPORT_TABLES = (("usage", "reports", "sequence"), ("fault", "fault_reports", "fault_id"))


@dataclass(frozen=True, slots=True)
class RecordedReport:
    kind: str
    rental_id: int
    key: int  # sequence (usage) or fault_id (fault)
    digest: bytes
    body: bytes
    signature: bytes | None
    version: int = 0  # the signer-set version the report is for


class ReportStore:
    """Record-before-sign of usage and fault reports (mixed into NodeStorage: ``_conn``, ``_lock``,
    ``_transaction``)."""

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
