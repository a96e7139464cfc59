"""Rentals, rental terms and the metering core's checkpoints in the node's database.

:class:`MeteringStore` is a part of :class:`~oracle.node.storage.NodeStorage` (one connection,
one lock, one transaction helper); it is not used on its own.
"""

from __future__ import annotations

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


class MeteringStore:
    """The rental registry's rows, rental terms and meter checkpoints (mixed into NodeStorage)."""

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
