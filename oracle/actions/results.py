"""What every executed action returns besides its own fields: the transaction that did it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from oracle.chain.tx import TxResult


@dataclass(frozen=True)
class TxDone:
    """The action's main transaction (mined), and every transaction it sent, by step."""

    tx_hash: str
    block_number: int
    gas_used: int
    txs: dict[str, str] = field(default_factory=dict)
    #: True when an interrupted earlier run had already sent it (found in the journal, not sent again)
    resumed: bool = False

    @classmethod
    def of(cls, results: dict[str, TxResult], main: str, resumed: bool = False) -> "TxDone":
        r = results[main]
        return cls(r.tx_hash, r.block_number, r.gas_used, {k: v.tx_hash for k, v in results.items()}, resumed)

    def tx_out(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tx": self.tx_hash, "block": self.block_number, "gas_used": self.gas_used}
        if self.resumed:
            out["resumed"] = True
        return out
