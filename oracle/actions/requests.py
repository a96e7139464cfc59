"""``TxRequest``: one transaction an action wants sent, before anyone signs it.

Actions plan a list of these (``plan_<name>(view, ...)``). The CLI and the demo execute them
through the journal and a local signer; the web server returns them as JSON to a browser wallet,
which sends each with ``eth_sendTransaction`` (EIP-1193). No key is involved in planning.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TxRequest:
    """``to`` (None: a contract creation), ``data`` (0x hex calldata or creation code), ``value``
    in wei, ``label`` for a person ("approve 5 tUSD for the market"); ``function`` names the
    contract function (for errors), ``step`` names the transaction within its action (the journal
    key; default: the function name)."""

    to: str | None
    data: str
    value: int = 0
    label: str = ""
    function: str = ""
    step: str = ""

    @property
    def step_key(self) -> str:
        return self.step or self.function or self.label

    def tx(self) -> dict[str, Any]:
        """The fields a sender signs (nonce, gas and fees are the sender's business)."""
        out: dict[str, Any] = {"data": self.data, "value": int(self.value)}
        if self.to is not None:
            out["to"] = self.to
        return out

    def as_json(self) -> dict[str, Any]:
        """What a browser wallet's ``eth_sendTransaction`` takes (plus the label and step)."""
        out: dict[str, Any] = {"data": self.data, "value": hex(int(self.value)), "label": self.label,
                               "function": self.function, "step": self.step_key}
        if self.to is not None:
            out["to"] = self.to
        return out


def intent_key(action: str, *parts: Any) -> str:
    """A stable key naming what a person asked for ("open a rental of offer 3 with 5 tUSD from
    0xabc"): the same command run again names the same intent, so the journal can find the
    transaction an interrupted run already sent."""
    text = json.dumps([action, *[_plain(p) for p in parts]], sort_keys=True, separators=(",", ":"))
    return f"{action}:{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def _plain(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, str) and value.startswith("0x"):
        return value.lower()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
