"""Group commit of telemetry batches: one transaction (one fsync) for many concurrent requests."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from oracle.errors import StorageError

if TYPE_CHECKING:
    from oracle.node.storage import AppendOutcome, BatchRecord, NodeStorage


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
