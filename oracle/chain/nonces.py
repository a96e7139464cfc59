"""Next-nonce bookkeeping for one account, shared by every sender of a process."""

from __future__ import annotations

import logging
import threading
from typing import Callable

from hexbytes import HexBytes
from web3 import Web3

log = logging.getLogger("oracle.chain.tx")


class NonceManager:
    """Next-nonce bookkeeping for one account, shared by every sender of this process.

    The next nonce is the chain's pending count, or the local counter when that is ahead *and*
    the transaction we sent at the chain's count is still known to the node (the RPC's pending
    view lags behind our own sends). When that transaction is gone (dropped from the pool, or
    reorganised away) the local counter is ahead for nothing and falls back to the chain's.
    """

    def __init__(self, w3: Web3, address: str) -> None:
        self._w3 = w3
        self._address = address
        self._next: int | None = None
        self._sent: dict[int, HexBytes] = {}
        self.lock = threading.RLock()

    def next_nonce(self, chain_pending: int, is_known: Callable[[HexBytes], bool]) -> int:
        for n in [n for n in self._sent if n < chain_pending]:
            del self._sent[n]
        if self._next is None or chain_pending >= self._next:
            self._next = chain_pending
        else:
            ours = self._sent.get(chain_pending)
            if ours is None or not is_known(ours):
                log.info("local nonce %d is ahead of the chain's %d with nothing in flight; resyncing",
                         self._next, chain_pending)
                self._sent = {n: h for n, h in self._sent.items() if n < chain_pending}
                self._next = chain_pending
        return self._next

    def consumed(self, nonce: int, tx_hash: HexBytes) -> None:
        self._sent[nonce] = tx_hash
        self._next = max(self._next or 0, nonce + 1)

    def reset(self) -> None:
        """Forget the local counter; the next send reads the chain's pending count."""
        self._next = None
        self._sent.clear()
