"""Telemetry of closed rentals: one content-addressed archive file per rental, then pruning.

``export_rental`` writes every stored batch of a rental, as its canonical wire JSON (one line
each, after a header line), gzip-compressed deterministically, to ``<keccak256 of the file>.jsonl.gz``
in the archive folder: the name proves the contents (:func:`read_archive` checks it, and the hash
chain from batch 0), and the same telemetry always gives the same file. The database records the
archive; :class:`Retention` prunes the rental's batches once ``dispute_window_s`` has passed since
it was archived, so the database holds running and recently closed rentals only.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

from oracle.errors import StorageError
from oracle.node.storage import NodeStorage
from oracle.telemetry.batches import GENESIS_PREV_HASH, TelemetryBatch, keccak

log = logging.getLogger(__name__)

ARCHIVE_FORMAT = "gpurent-telemetry-archive/1"
SUFFIX = ".jsonl.gz"


def archive_bytes(rental_id: int, batches: list[TelemetryBatch]) -> bytes:
    """The archive file's bytes (deterministic: gzip with mtime 0 and no file name)."""
    head = "0x" + (batches[-1].batch_hash() if batches else GENESIS_PREV_HASH).hex()
    header = json.dumps({"format": ARCHIVE_FORMAT, "rental_id": rental_id, "batches": len(batches),
                         "head_hash": head}, sort_keys=True, separators=(",", ":")).encode()
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="", compresslevel=9) as out:
        out.write(header + b"\n")
        for batch in batches:
            out.write(batch.to_wire_bytes() + b"\n")
    return raw.getvalue()


def export_rental(storage: NodeStorage, rental_id: int, archive_dir: Path, now_ms: int) -> Path:
    """Write the rental's archive (fsynced, then renamed into place) and record it; idempotent."""
    recorded = storage.archive_record(rental_id)
    if recorded is not None:
        return archive_dir / recorded[0]
    next_seq, _ = storage.batch_head(rental_id)
    batches = [batch for _, _, batch in storage.iter_batch_objects(rental_id, 0, next_seq)]
    data = archive_bytes(rental_id, batches)
    path = archive_dir / (keccak(data).hex() + SUFFIX)
    archive_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        directory = os.open(archive_dir, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    storage.record_archive(rental_id, path.name, len(batches), now_ms)
    return path


def read_archive(path: Path) -> tuple[int, list[TelemetryBatch]]:
    """(rental id, batches) of an archive file; raises StorageError unless its name is its hash and
    its batches form the rental's hash chain from batch 0."""
    data = Path(path).read_bytes()
    if Path(path).name != keccak(data).hex() + SUFFIX:
        raise StorageError(f"{path}: the file's keccak256 is not its name")
    lines = gzip.decompress(data).split(b"\n")
    header = json.loads(lines[0])
    if header.get("format") != ARCHIVE_FORMAT:
        raise StorageError(f"{path}: not a {ARCHIVE_FORMAT} file")
    batches = [TelemetryBatch.from_wire_bytes(line) for line in lines[1:] if line]
    prev = GENESIS_PREV_HASH
    for seq, batch in enumerate(batches):
        if (batch.batch_seq, batch.prev_hash, batch.rental_id) != (seq, prev, header["rental_id"]):
            raise StorageError(f"{path}: batch {seq} breaks the rental's hash chain")
        prev = batch.batch_hash()
    if len(batches) != header["batches"] or "0x" + prev.hex() != header["head_hash"]:
        raise StorageError(f"{path}: the header does not match the batches")
    return header["rental_id"], batches


class Retention:
    """Archives closed rentals and prunes them ``dispute_window_s`` later.

    ``closed()`` names the rentals that are over (with ``rpc_url``: finalized or cancelled on chain).
    ``run_once`` is cheap when nothing changed; ``start``/``stop`` run it every ``interval_s``.
    """

    def __init__(self, storage: NodeStorage, archive_dir: Path, closed: Callable[[], Iterable[int]],
                 dispute_window_s: int, *, interval_s: float = 60.0,
                 clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self.storage, self.archive_dir, self.closed = storage, Path(archive_dir), closed
        self.dispute_window_ms = dispute_window_s * 1000
        self.interval_s, self.clock_ms = interval_s, clock_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.archived = self.pruned = self.errors = 0

    def run_once(self) -> None:
        now_ms = self.clock_ms()
        for rental_id in sorted(set(self.closed())):
            if self.storage.archive_record(rental_id) is None:
                path = export_rental(self.storage, rental_id, self.archive_dir, now_ms)
                self.archived += 1
                log.info("rental %s archived to %s", rental_id, path)
        for rental_id in self.storage.prunable(now_ms - self.dispute_window_ms):
            deleted = self.storage.prune_batches(rental_id, now_ms)
            self.pruned += 1
            log.info("rental %s: %d batches pruned (archived, dispute window over)", rental_id, deleted)

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # disk full, a locked database: count, log, try again later
                self.errors += 1
                log.warning("archive/prune round failed: %s: %s", type(exc).__name__, exc)
            self._stop.wait(self.interval_s)

    def start(self) -> "Retention":
        self._thread = threading.Thread(target=self.run, name="gpurent-retention", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
