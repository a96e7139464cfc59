"""Feeds the web index from the chain: one reorg-safe EventFollower per contract (market, timelock).

For each log the handler adds, read at that log's block (by block hash, so a reorganised block
cannot answer): the rental as stored (``getRental``, and ``rentalTerms`` at open), the
provider's stake (``stakeOf``) for events that change it, and for settlements and slashes the
reports, fault and signers decoded from the transaction's calldata. The derived tables are then
a pure replay of the stored events (:mod:`oracle.web.derive`), which is what a rewind uses.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from web3 import Web3
from web3.exceptions import Web3RPCError

from oracle.chain.artifacts import load_abi
from oracle.chain.events import ChainEvent, CursorStore, EventFollower, RpcLaggingError
from oracle.redact import redact
from oracle.web import derive
from oracle.web.decode import CalldataDecoder, jsonable
from oracle.web.store import IndexStore

log = logging.getLogger(__name__)

INDEX_FILE = "web-index.sqlite"

RENTAL_EVENTS = {"RentalOpened", "RentalStarted", "RentalToppedUp", "RentalCancelled", "RentalEnded",
                 "RentalFinalized", "SlashPaidOut", "EarningsClaimed", "Slashed"}
STAKE_EVENTS = {"OfferCreated", "OfferUpdated", "OfferWithdrawn", "Staked", "UnstakeRequested", "Unstaked",
                "RentalStarted", "RentalFinalized", "Slashed"}
SETTLEMENT_EVENTS = {"UsageSettled", "UsageBatchSettled"}


@dataclass(frozen=True)
class IndexTarget:
    """What to follow: the deployment's addresses and where to start."""

    chain_id: int
    market: str
    start_block: int = 0
    timelock: str | None = None
    operator_registry: str | None = None


_STATE_GONE = ("missing trie node", "header not found", "state", "pruned", "historical", "not available",
               "out of range", "outofrange", "unknown block", "block not found", "distance", "archive")


def _state_unavailable(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "revert" not in text and any(m in text for m in _STATE_GONE)


def _event_params(abi: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Mapping[str, Any]]]:
    return {e["name"]: {p["name"]: p for p in e.get("inputs", [])} for e in abi if e.get("type") == "event"}


def _outputs(abi: Sequence[Mapping[str, Any]], name: str) -> Mapping[str, Any]:
    fn = next(f for f in abi if f.get("type") == "function" and f.get("name") == name)
    return fn["outputs"][0]


class ChainIndexer:
    """Followers + handlers writing to an :class:`IndexStore`. ``poll_once`` or ``start``/``stop``."""

    def __init__(self, w3: Web3, target: IndexTarget, store: IndexStore, *, confirmations: int = 2,
                 poll_interval_s: float = 1.0, max_block_range: int = 2_000) -> None:
        self.w3 = w3
        self.target = target
        self.store = store
        self.poll_interval_s = poll_interval_s
        self.market_abi = load_abi("GpuRentMarket")
        self.market = w3.eth.contract(address=Web3.to_checksum_address(target.market), abi=self.market_abi)
        registry_abi = load_abi("OperatorRegistry") if target.operator_registry else None
        self.decoder = CalldataDecoder(w3, target.chain_id, target.market, self.market_abi,
                                       target.operator_registry, registry_abi)
        self.cursor = CursorStore(store.path) if store.path != ":memory:" else CursorStore(":memory:")
        self._params = {"market": _event_params(self.market_abi)}
        common = dict(store=self.cursor, confirmations=confirmations, start_block=target.start_block,
                      max_block_range=max_block_range, poll_interval_s=poll_interval_s, with_timestamps=True)
        self.followers: dict[str, EventFollower] = {
            "market": EventFollower(w3, target.market, self.market_abi, lambda ev: self._handle("market", ev),
                                    name="web-market", event_names=derive.MARKET_EVENTS,
                                    on_rewind=lambda block: self._rewind("market", block), **common),
        }
        if target.timelock:
            timelock_abi = load_abi("MarketTimelock")
            self._params["timelock"] = _event_params(timelock_abi)
            self.followers["timelock"] = EventFollower(
                w3, target.timelock, timelock_abi, lambda ev: self._handle("timelock", ev), name="web-timelock",
                event_names=derive.TIMELOCK_EVENTS, on_rewind=lambda block: self._rewind("timelock", block), **common)
        for source, follower in self.followers.items():  # nothing beyond the durable cursor is trusted
            store.trim(source, follower.next_block())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0
        self.state_fallbacks = 0  # reads at the head because the RPC had pruned the event's block state

    # ------------------------------------------------------------------ reads at a block
    def _call(self, name: str, *args: Any, block_hash: str) -> Any:
        """``market.name(*args)`` as stored at ``block_hash``; at the head when the node no longer
        keeps that block's state (a non-archive RPC and an old event: the page shows the present,
        which is what the last event of a catch-up leaves anyway)."""
        fn = getattr(self.market.functions, name)(*args)
        try:
            value = fn.call(block_identifier=block_hash)
        except (Web3RPCError, ValueError) as exc:  # an error answer, not a connection failure
            if not _state_unavailable(exc):
                raise
            self.state_fallbacks += 1
            value = fn.call(block_identifier="latest")
        return jsonable(value, _outputs(self.market_abi, name))

    def _extra(self, source: str, ev: ChainEvent, args: dict[str, Any]) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if source != "market":
            return extra
        at = ev.block_hash
        rental: dict[str, Any] | None = None
        if ev.name in RENTAL_EVENTS:
            rental = self._call("getRental", int(args["rentalId"]), block_hash=at)
            extra["rental"] = rental
            if ev.name == "RentalOpened":
                extra["terms"] = self._call("rentalTerms", int(args["rentalId"]), block_hash=at)
        if ev.name in SETTLEMENT_EVENTS or ev.name == "Slashed":
            decoded = self.decoder.transaction(ev.tx_hash)
            extra.update(method=decoded["method"], submitter=decoded["submitter"], reports=decoded["reports"])
            if ev.name == "Slashed":
                extra["fault"] = decoded["fault"]
            if ev.name == "UsageSettled":
                ids = [int(args["rentalId"])]
            elif ev.name == "UsageBatchSettled":
                ids = sorted({int(w) >> 128 for w in args["settled"]})
            else:
                ids = []
            extra["rentals"] = {str(i): self._call("getRental", i, block_hash=at) for i in ids}
        if ev.name in STAKE_EVENTS:
            provider = args.get("provider") or (rental or {}).get("provider")
            if provider is None and "offerId" in args:
                provider = self._call("getOffer", int(args["offerId"]), block_hash=at)["provider"]
            if provider is not None:
                extra["provider"] = provider
                extra["stake"] = self._call("stakeOf", provider, block_hash=at)
        return extra

    # ------------------------------------------------------------------ follower callbacks
    def _handle(self, source: str, ev: ChainEvent) -> None:
        params = self._params[source].get(ev.name, {})
        args = {k: jsonable(v, params.get(k)) for k, v in ev.args.items()}
        self.store.add_event(source=source, name=ev.name, block=ev.block_number, log_index=ev.log_index,
                             tx_hash=ev.tx_hash, ts=ev.block_timestamp, args=args,
                             extra=self._extra(source, ev, args))

    def _rewind(self, source: str, first_invalid_block: int) -> None:
        dropped = self.store.rewind(source, first_invalid_block)
        log.warning("web index: %s reorg, dropped %d events from block %d on", source, dropped, first_invalid_block)

    # ------------------------------------------------------------------ polling
    def poll_once(self) -> int:
        delivered = 0
        for source, follower in self.followers.items():
            delivered += follower.poll_once()
            self.store.set_status(source, follower.next_block() - 1, follower.stats.head_block, None)
        head = self.w3.eth.get_block("latest")
        for source in self.followers:
            self.store.set_status(source, self.followers[source].next_block() - 1, int(head["number"]),
                                  int(head["timestamp"]))
        return delivered

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self.poll_interval_s
            try:
                self.poll_once()
            except RpcLaggingError as exc:
                log.info("web index: %s", exc)
            except Exception as exc:  # keep following: the cursor only moves on success
                self.errors += 1
                wait = min(10.0, self.poll_interval_s * 2)
                log.warning("web index: poll failed (%s: %s)", type(exc).__name__, redact(str(exc)))
            self._stop.wait(wait)

    def start(self) -> "ChainIndexer":
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="gpurent-web-index", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.cursor.close()


def index_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / INDEX_FILE
