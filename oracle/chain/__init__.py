"""The chain client: web3.py transactions with a local signer, the market's typed wrapper,
event following with confirmations, and contract artifacts.

Public names: ``MarketClient`` (``oracle.chain.client``), ``EventFollower``
(``oracle.chain.events``), ``TransactionSender``/``TxPolicy``/``TxResult`` (``oracle.chain.tx``),
``TransactionRevertedError`` and friends (``oracle.chain.errors``), ``load_abi``/``get_artifact``
(``oracle.chain.artifacts``). Imported lazily so that ``import oracle.chain`` stays cheap.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "MarketClient": "oracle.chain.client",
    "EventFollower": "oracle.chain.events",
    "TransactionSender": "oracle.chain.tx",
    "TxPolicy": "oracle.chain.tx",
    "TxResult": "oracle.chain.tx",
    "TransactionRevertedError": "oracle.chain.errors",
    "RpcUnavailableError": "oracle.chain.errors",
    "FeeCapExceededError": "oracle.chain.errors",
    "load_abi": "oracle.chain.artifacts",
    "get_artifact": "oracle.chain.artifacts",
    "connect": "oracle.chain.contract",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'oracle.chain' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
