"""What every request of the web app shares: the index (one read connection per thread), token
metadata, the chain connection for live reads and transaction planning, and the node URLs."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from eth_utils import to_checksum_address

from oracle.web.store import IndexStore

@dataclass
class WebConfig:
    chain_id: int
    market: str
    start_block: int = 0
    timelock: str | None = None
    operator_registry: str | None = None
    network: str = ""
    explorer: str | None = None
    nodes: list[str] = field(default_factory=list)
    #: token address -> (symbol, decimals) known without a chain read (the deployment file's)
    tokens: dict[str, tuple[str, int]] = field(default_factory=dict)
    default_token: str | None = None
    stake_token: str | None = None
    #: the deployment itself, for the actions layer's read view (tx planning)
    deployment: Any = None


class Tokens:
    """Token metadata: the deployment's, else read once from the chain (``token_meta``)."""

    def __init__(self, known: dict[str, tuple[str, int]],
                 reader: Callable[[str], tuple[str, int] | None] | None) -> None:
        self._known = {to_checksum_address(k): v for k, v in known.items()}
        self._reader = reader
        self._lock = threading.Lock()

    def get(self, address: str | None) -> dict[str, Any]:
        if not address:
            return {"address": None, "symbol": "", "decimals": 18}
        address = to_checksum_address(address)
        with self._lock:
            meta = self._known.get(address)
        if meta is None and self._reader is not None:
            try:
                meta = self._reader(address)
            except Exception:
                meta = None
            if meta is not None:
                with self._lock:
                    self._known[address] = meta
        symbol, decimals = meta if meta is not None else ("", 18)
        return {"address": address, "symbol": symbol, "decimals": int(decimals)}


def chain_token_meta(w3: Any) -> Callable[[str], tuple[str, int] | None]:
    """Symbol and decimals read from the chain (any common ERC-20 shape); None when the token
    answered neither, so an RPC outage is not cached as "no symbol, 18 decimals"."""
    from oracle.chain.tokens import token_meta

    def read(address: str) -> tuple[str, int] | None:
        meta = token_meta(w3, address)
        if not meta.symbol and not meta.has_decimals:
            return None
        return meta.label, meta.decimals
    return read


class WebState:
    def __init__(self, config: WebConfig, store: IndexStore, *, w3: Any = None, indexer: Any = None) -> None:
        self.config = config
        self.store = store
        self.w3 = w3
        self.indexer = indexer
        self.tokens = Tokens(config.tokens, chain_token_meta(w3) if w3 is not None else None)
        self._local = threading.local()
        self._facets: tuple[int, Any] = (-1, None)
        self._planner_sender: Any = None

    def facets(self) -> Any:
        """The market's facet counts, recomputed only after the index changed."""
        from oracle.web.market import facets

        generation, cached = self._facets
        if generation != self.store.generation or cached is None:
            generation = self.store.generation
            cached = facets(self.db())
            self._facets = (generation, cached)
        return cached

    def db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.store.reader()
            self._local.conn = conn
        return conn

    def clock(self) -> tuple[int, int]:
        """(now, block): the chain head's timestamp and number as last seen by the indexer."""
        row = self.db().execute("SELECT MAX(head_ts), MAX(head_block) FROM status").fetchone()
        return int(row[0] or 0), int(row[1] or 0)

    def index_status(self) -> dict[str, Any]:
        rows = self.db().execute("SELECT source, last_block, head_block, rewinds FROM status").fetchall()
        events = int(self.db().execute("SELECT COUNT(*) FROM events").fetchone()[0])
        if not rows:
            return {"ready": False, "last_block": -1, "head_block": -1, "lag_blocks": 0, "events": events, "rewinds": 0}
        last = min(int(r["last_block"]) for r in rows)
        head = max(int(r["head_block"]) for r in rows)
        return {"ready": last >= 0, "last_block": last, "head_block": head, "lag_blocks": max(0, head - last),
                "events": events, "rewinds": sum(int(r["rewinds"]) for r in rows),
                "sources": {r["source"]: int(r["last_block"]) for r in rows}}

    def action_view(self, account: str) -> Any:
        """The read view ``oracle.actions.plan_*`` take, on behalf of the wallet address ``account``
        (a throwaway key signs nothing: planning only reads)."""
        from eth_account import Account

        from oracle.actions.context import MarketView
        from oracle.chain.tx import TransactionSender, TxPolicy
        from oracle.web.errors import ApiError

        if self.w3 is None or self.config.deployment is None:
            raise ApiError(503, "this server has no chain connection or deployment to plan transactions with")
        if self._planner_sender is None:
            self._planner_sender = TransactionSender(self.w3, Account.create(), policy=TxPolicy(rpc_retries=1))
        try:
            return MarketView(self._planner_sender, self.config.deployment, account=account)
        except Exception as exc:  # noqa: BLE001 - the chain or the deployment cannot be read
            raise ApiError(503, f"cannot read the market to plan with ({type(exc).__name__}: {exc})") from None
