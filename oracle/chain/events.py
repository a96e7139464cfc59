"""Following contract events with confirmations, a durable cursor, and reorg detection.

``EventFollower.poll_once()`` delivers, in chain order, every log of the followed contract in
blocks that have at least ``confirmations`` blocks on top of them, then persists its cursor.
Delivery is at-least-once: a crash between a handler and the cursor commit re-delivers that
range, so handlers must be idempotent (``RentalRegistry.upsert`` is).

Reorgs. The follower stores the hash of the last block of every range it processed and of every
block it delivered a log from (the "checkpoints", in SQLite beside the cursor). Before reading
further it checks the newest checkpoint against the chain; if the hash changed, the blocks it
read were reorganised away: it walks its checkpoints down to the newest one still canonical,
rewinds the cursor to just above it, calls ``on_rewind(first_invalid_block)`` so consumers drop
what they learned from those blocks, and reads them again. With ``confirmations >= 1`` a reorg
of unconfirmed blocks never reaches a handler at all; with ``confirmations = 0`` the follower
reads up to the head and relies on the rewind.

Within one range the head of the range is read before and after ``eth_getLogs`` and every log's
``blockHash`` is checked against it, so a reorg during the read is retried, not delivered.

RPC errors: transient ones are retried with backoff (``retry_rpc``); ``run()`` keeps polling
after any error (logged, counted in ``errors``), so a flapping RPC endpoint only delays events.

A lagging RPC answer is not a reorg. A load-balanced endpoint may answer from a backend that
has not seen a block the follower already read (a null block for a checkpoint or for the end
of a range ``eth_blockNumber`` just announced). Only a *different* hash for a block number is a
reorg; a null answer raises :class:`RpcLaggingError`, which ends the poll without moving the
cursor, and ``run()`` waits (doubling from ``poll_interval_s`` up to ``max_lag_wait_s``) before
polling again, so a persistently lagging backend costs a few requests per wait, not a spin.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import Web3RPCError

from oracle.chain.background import BackgroundLoop
from oracle.chain.cursor_store import CursorStore
from oracle.chain.errors import _abi_type
from oracle.chain.tx import retry_rpc
from oracle.errors import ChainError
from oracle.redact import redact

log = logging.getLogger(__name__)

__all__ = ["ChainEvent", "CursorStore", "EventFollower", "FollowerStats", "ReorgTooDeepError", "RpcLaggingError"]


@dataclass(frozen=True)
class ChainEvent:
    """One decoded contract log."""

    name: str
    args: dict[str, Any]
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    address: str
    block_timestamp: int | None = None


class ReorgTooDeepError(ChainError):
    """Every stored checkpoint was reorganised away: the follower cannot find a common ancestor."""


class RpcLaggingError(ChainError):
    """The RPC answered null for a block the follower already saw announced or stored: it lags."""


@dataclass
class FollowerStats:
    polls: int = 0
    events: int = 0
    rewinds: int = 0
    errors: int = 0
    lagging: int = 0  # polls ended because the RPC answered null for a block already seen
    last_block: int = -1  # highest block fully delivered
    head_block: int = -1  # chain head at the last poll
    rewound_to: list[int] = field(default_factory=list)

    @property
    def lag_blocks(self) -> int:
        return max(0, self.head_block - self.last_block)


_RANGE_ERRORS = ("more than", "block range", "limit", "too many", "too large", "exceed", "response size")


class EventFollower(BackgroundLoop):
    """Reads a contract's logs in block ranges, ``confirmations`` deep, surviving RPC errors and reorgs."""

    def __init__(
        self,
        w3: Web3,
        address: str,
        abi: Sequence[dict[str, Any]],
        handler: Callable[[ChainEvent], None],
        *,
        store: CursorStore,
        name: str = "market",
        event_names: Iterable[str] | None = None,
        confirmations: int = 2,
        start_block: int = 0,
        max_block_range: int = 2_000,
        poll_interval_s: float = 1.0,
        on_rewind: Callable[[int], None] | None = None,
        with_timestamps: bool = False,
        rpc_retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        max_lag_wait_s: float = 30.0,
    ) -> None:
        if confirmations < 0:
            raise ValueError("confirmations must be >= 0")
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        self.contract = w3.eth.contract(address=self.address, abi=list(abi))
        self.handler = handler
        self.store = store
        self.name = name
        self.confirmations = confirmations
        self.start_block = start_block
        self.max_block_range = max(1, max_block_range)
        self._range = self.max_block_range
        self.poll_interval_s = poll_interval_s
        self.on_rewind = on_rewind
        self.with_timestamps = with_timestamps
        self.rpc_retries = rpc_retries
        self._sleep = sleep
        self.max_lag_wait_s = max_lag_wait_s
        self.stats = FollowerStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

        wanted = set(event_names) if event_names is not None else None
        self._events: dict[bytes, Any] = {}
        for item in abi:
            if item.get("type") != "event" or item.get("anonymous"):
                continue
            if wanted is not None and item["name"] not in wanted:
                continue
            sig = f"{item['name']}({','.join(_abi_type(p) for p in item.get('inputs', []))})"
            self._events[bytes(Web3.keccak(text=sig))] = self.contract.events[item["name"]]()
        if wanted is not None:
            missing = wanted - {ev.event_name for ev in self._events.values()}
            if missing:
                raise ChainError(f"events not in the ABI: {sorted(missing)}")

    # ------------------------------------------------------------------ RPC
    def _rpc(self, fn: Callable[[], Any], what: str) -> Any:
        return retry_rpc(fn, what, retries=self.rpc_retries, sleep=self._sleep)

    def _block_hash(self, number: int) -> bytes | None:
        try:
            block = self._rpc(lambda: self.w3.eth.get_block(number), "eth_getBlockByNumber")
        except Exception as exc:
            if "not found" in str(exc).lower():
                return None
            raise
        return bytes(block["hash"]) if block else None

    # ------------------------------------------------------------------ reorgs
    def _check_reorg(self) -> bool:
        """Rewind if the newest checkpoint is no longer canonical. True when it rewound."""
        checkpoints = self.store.checkpoints(self.name)
        if not checkpoints:
            return False
        newest_number, newest_hash = checkpoints[0]
        current = self._block_hash(newest_number)
        if current is None:
            raise RpcLaggingError(f"{self.name}: the RPC has no block {newest_number}, which this follower read")
        if current == newest_hash:
            return False
        # Walk down to the newest checkpoint still on the canonical chain.
        ancestor: int | None = None
        for number, stored in checkpoints[1:]:
            current = self._block_hash(number)
            if current is None:
                raise RpcLaggingError(f"{self.name}: the RPC has no block {number}, which this follower read")
            if current == stored:
                ancestor = number
                break
        if ancestor is None:
            oldest = checkpoints[-1][0]
            if oldest <= self.start_block:
                ancestor = self.start_block - 1
            else:
                raise ReorgTooDeepError(
                    f"{self.name}: reorg deeper than the {len(checkpoints)} stored checkpoints "
                    f"(oldest block {oldest}); refusing to guess a common ancestor"
                )
        first_invalid = ancestor + 1
        log.warning(
            "%s: reorg detected at block %d (stored hash changed); rewinding to block %d",
            self.name, newest_number, first_invalid,
        )
        self.store.rewind(self.name, first_invalid)
        self.stats.rewinds += 1
        self.stats.rewound_to.append(first_invalid)
        self.stats.last_block = first_invalid - 1
        if self.on_rewind is not None:
            self.on_rewind(first_invalid)
        return True

    # ------------------------------------------------------------------ polling
    def next_block(self) -> int:
        stored = self.store.next_block(self.name)
        return self.start_block if stored is None else stored

    def poll_once(self) -> int:
        """Deliver every confirmed event not yet delivered (up to a bounded number of ranges).

        Returns how many events were delivered.
        """
        self.stats.polls += 1
        self._check_reorg()
        head = int(self._rpc(lambda: self.w3.eth.block_number, "eth_blockNumber"))
        self.stats.head_block = head
        target = head - self.confirmations
        delivered = 0
        rereads = 0
        start = self.next_block()
        while start <= target:
            end = min(target, start + self._range - 1)
            try:
                events, checkpoints = self._read_range(start, end)
            except _RangeTooLarge:
                if self._range == 1:
                    raise ChainError(f"{self.name}: eth_getLogs refuses even a single block ({start})")
                self._range = max(1, self._range // 2)
                log.info("%s: narrowing eth_getLogs range to %d blocks", self.name, self._range)
                continue
            except _ReorgDuringRead:
                rereads += 1
                if rereads > 3:  # the chain keeps changing under us: try again next poll
                    break
                log.info("%s: chain changed while reading %d..%d; rereading", self.name, start, end)
                self._check_reorg()
                start = self.next_block()
                continue
            for event in events:
                self.handler(event)
            self.store.advance(self.name, end + 1, checkpoints)
            delivered += len(events)
            self.stats.events += len(events)
            self.stats.last_block = end
            start = end + 1
            if self._range < self.max_block_range:  # grow back slowly after a narrowing
                self._range = min(self.max_block_range, self._range * 2)
        return delivered

    def _read_range(self, start: int, end: int) -> tuple[list[ChainEvent], dict[int, bytes]]:
        end_hash = self._block_hash(end)
        if end_hash is None:  # eth_blockNumber announced it, eth_getBlockByNumber has not got it
            raise RpcLaggingError(f"{self.name}: the RPC has no block {end} below its announced head")
        params: dict[str, Any] = {
            "fromBlock": start,
            "toBlock": end,
            "address": self.address,
            "topics": [[HexBytes(t).to_0x_hex() for t in self._events]],
        }
        try:
            logs = self._rpc(lambda: self.w3.eth.get_logs(params), "eth_getLogs")
        except Web3RPCError as exc:
            msg = str(getattr(exc, "message", exc)).lower()
            if any(m in msg for m in _RANGE_ERRORS) and end > start:
                raise _RangeTooLarge() from exc
            raise
        end_again = self._block_hash(end)
        if end_again is None:
            raise RpcLaggingError(f"{self.name}: the RPC lost block {end} while reading it")
        if end_again != end_hash:
            raise _ReorgDuringRead()
        checkpoints: dict[int, bytes] = {end: end_hash}
        events: list[ChainEvent] = []
        timestamps: dict[int, int] = {}
        for raw in sorted(logs, key=lambda lg: (int(lg["blockNumber"]), int(lg["logIndex"]))):
            if raw.get("removed"):
                continue
            number, block_hash = int(raw["blockNumber"]), bytes(raw["blockHash"])
            if number == end and block_hash != end_hash:
                raise _ReorgDuringRead()
            if checkpoints.setdefault(number, block_hash) != block_hash:
                raise _ReorgDuringRead()
            ev = self._events.get(bytes(raw["topics"][0])) if raw["topics"] else None
            if ev is None:
                continue
            decoded = ev.process_log(raw)
            ts = None
            if self.with_timestamps:
                if number not in timestamps:
                    blk = self._rpc(lambda: self.w3.eth.get_block(number), "eth_getBlockByNumber")
                    if not blk:
                        raise RpcLaggingError(f"{self.name}: the RPC has no block {number} of a log it returned")
                    if bytes(blk["hash"]) != block_hash:
                        raise _ReorgDuringRead()
                    timestamps[number] = int(blk["timestamp"])
                ts = timestamps[number]
            events.append(
                ChainEvent(
                    name=decoded["event"],
                    args=dict(decoded["args"]),
                    block_number=number,
                    block_hash="0x" + block_hash.hex(),
                    tx_hash=HexBytes(raw["transactionHash"]).to_0x_hex(),
                    log_index=int(raw["logIndex"]),
                    address=Web3.to_checksum_address(raw["address"]),
                    block_timestamp=ts,
                )
            )
        return events, checkpoints

    # ------------------------------------------------------------------ background loop
    def run(self, stop: threading.Event | None = None) -> None:
        """Poll until ``stop`` is set; RPC and handler errors are logged and retried."""
        stop = stop or self._stop
        lag_wait = self.poll_interval_s
        while not stop.is_set():
            wait = self.poll_interval_s
            try:
                self.poll_once()
                lag_wait = self.poll_interval_s
            except RpcLaggingError as exc:  # wait for the backend to catch up: no reorg, no spin
                self.stats.lagging += 1
                lag_wait = min(self.max_lag_wait_s, max(lag_wait * 2, self.poll_interval_s))
                wait = lag_wait
                log.info("%s: %s; waiting %.1f s", self.name, exc, wait)
            except Exception as exc:  # survive anything: the cursor only moves on success
                self.stats.errors += 1
                log.warning("%s: poll failed (%s: %s); retrying", self.name, type(exc).__name__, redact(str(exc)))
            stop.wait(wait)

    @property
    def thread_name(self) -> str:
        return f"gpurent-follow-{self.name}"


class _RangeTooLarge(Exception):
    pass


class _ReorgDuringRead(Exception):
    pass
