"""What the journal says was sent, and what the chain says became of it (``gpurent tx status``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hexbytes import HexBytes
from web3.exceptions import TransactionNotFound

from oracle.actions.context import MarketView
from oracle.actions.journal import OPEN, Journal, journal_path


@dataclass(frozen=True)
class TxState:
    action: str
    step: str
    function: str
    sender: str
    nonce: int
    tx_hash: str
    journal_status: str  # signed | mined | reverted | dropped
    chain_state: str  # mined | reverted | pending | not on chain
    block_number: int | None
    attempt_open: bool  # the command was interrupted: running it again finishes it
    created_at: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _chain_state(view: MarketView, hashes: list[str]) -> tuple[str, str, int | None]:
    for h in reversed(hashes):
        try:
            receipt = view.w3.eth.get_transaction_receipt(HexBytes(h))
        except TransactionNotFound:
            receipt = None
        if receipt is not None:
            return h, ("mined" if receipt["status"] == 1 else "reverted"), int(receipt["blockNumber"])
    for h in reversed(hashes):
        try:
            view.w3.eth.get_transaction(HexBytes(h))
            return h, "pending", None
        except TransactionNotFound:
            continue
    return hashes[-1], "not on chain", None


def journals(view: MarketView) -> list[Journal]:
    """This chain's journal files that exist: the market's and the deployments'."""
    market = view.deployment.market if view.deployment is not None else None
    paths = {journal_path(view.chain_id, market), journal_path(view.chain_id, None)}
    return [Journal(p) for p in sorted(paths) if p.exists()]


def tx_status(view: MarketView, *, limit: int = 20, account: str | None = None) -> list[TxState]:
    """The ``limit`` most recent journaled transactions (of ``account`` if given), newest first."""
    out: list[TxState] = []
    for journal in journals(view):
        open_attempts = {(a.intent, a.attempt) for a in journal.attempts(state=OPEN, limit=1000)}
        actions = {(a.intent, a.attempt): a.action for a in journal.attempts(limit=10_000)}
        for t in journal.recent_txs(limit):
            if account is not None and t.sender.lower() != account.lower():
                continue
            tx_hash, state, block = _chain_state(view, t.hashes)
            out.append(TxState(actions.get((t.intent, t.attempt), t.intent.split(":")[0]), t.step, t.function,
                               t.sender, t.nonce, tx_hash, t.status, state, block,
                               (t.intent, t.attempt) in open_attempts, t.created_at))
        journal.close()
    out.sort(key=lambda s: s.created_at, reverse=True)
    return out[:limit]
