"""ERC-20 tokens as they are in the wild: metadata in any common shape, and the one rule for
approvals: tokens that refuse to change a non-zero allowance (USDT) are reset to zero first, and
only when the token would refuse the direct change (other tokens refuse approving zero).

Calls are raw ``eth_call``s decoded here, so a ``symbol()`` returning ``bytes32`` (MKR), no
``symbol()``/``decimals()`` at all, or an ``approve`` that returns nothing never raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import function_signature_to_4byte_selector as selector
from web3 import Web3


#: ERC-20 leaves decimals() optional; without it amounts are read as 18 decimals (OpenZeppelin's default).
DEFAULT_DECIMALS = 18


@dataclass(frozen=True)
class TokenMeta:
    address: str
    symbol: str  # "" when the token has none readable
    decimals: int
    has_decimals: bool = True

    @property
    def label(self) -> str:
        """The symbol, or a short form of the address for a token without one."""
        return self.symbol or f"{self.address[:6]}…{self.address[-4:]}"

    def as_json(self) -> dict[str, Any]:
        return {"address": self.address, "symbol": self.symbol, "decimals": self.decimals,
                "has_decimals": self.has_decimals}


def _call(w3: Web3, to: str, data: bytes, sender: str | None = None) -> bytes | None:
    """Return data of an eth_call, or None when it reverts or the RPC refuses it."""
    tx: dict[str, Any] = {"to": Web3.to_checksum_address(to), "data": "0x" + data.hex()}
    if sender is not None:
        tx["from"] = Web3.to_checksum_address(sender)
    try:
        return bytes(w3.eth.call(tx))
    except Exception:  # noqa: BLE001 - a revert, a missing function, a node without the method
        return None


def decode_symbol(raw: bytes | None) -> str:
    """``symbol()`` output as ``string`` (ABI-encoded) or ``bytes32`` (MKR, SAI); "" otherwise."""
    if not raw:
        return ""
    text = ""
    if len(raw) >= 64 and int.from_bytes(raw[:32], "big") == 32:
        try:
            text = abi_decode(["string"], raw)[0]
        except Exception:  # noqa: BLE001 - not a string after all
            text = ""
    if not text and len(raw) >= 32:
        text = raw[:32].rstrip(b"\0").decode("utf-8", errors="replace")
    text = "".join(ch for ch in text if ch.isprintable()).strip()
    return text[:32]


def decode_decimals(raw: bytes | None) -> int | None:
    if not raw or len(raw) < 32:
        return None
    value = int.from_bytes(raw[:32], "big")
    return value if value <= 77 else None  # 10**77 < 2**256: more decimals than that means no decimals()


def token_meta(w3: Web3, address: str) -> TokenMeta:
    """(symbol, decimals) of ``address``, never raising for an odd or absent answer."""
    address = Web3.to_checksum_address(address)
    symbol = decode_symbol(_call(w3, address, selector("symbol()")))
    decimals = decode_decimals(_call(w3, address, selector("decimals()")))
    return TokenMeta(address, symbol, DEFAULT_DECIMALS if decimals is None else decimals, decimals is not None)


def balance_of(w3: Web3, token: str, account: str) -> int:
    raw = _call(w3, token, selector("balanceOf(address)") + abi_encode(["address"], [Web3.to_checksum_address(account)]))
    return int.from_bytes(raw[:32], "big") if raw and len(raw) >= 32 else 0


def allowance(w3: Web3, token: str, owner: str, spender: str) -> int:
    data = selector("allowance(address,address)") + abi_encode(
        ["address", "address"], [Web3.to_checksum_address(owner), Web3.to_checksum_address(spender)])
    raw = _call(w3, token, data)
    return int.from_bytes(raw[:32], "big") if raw and len(raw) >= 32 else 0


def approve_data(spender: str, amount: int) -> bytes:
    return selector("approve(address,uint256)") + abi_encode(["address", "uint256"],
                                                              [Web3.to_checksum_address(spender), int(amount)])


def approve_would_succeed(w3: Web3, token: str, owner: str, spender: str, amount: int) -> bool:
    """Whether ``owner``'s ``approve(spender, amount)`` would go through: no revert, and no
    ``false`` returned (a token without a return value counts as success)."""
    raw = _call(w3, token, approve_data(spender, amount), sender=owner)
    if raw is None:
        return False
    return len(raw) < 32 or int.from_bytes(raw[:32], "big") != 0


def approvals_needed(w3: Web3, token: str, owner: str, spender: str, amount: int, *, exact: bool = False) -> list[int]:
    """The ``approve`` amounts, in order, that leave ``spender`` allowed ``amount`` of ``token``
    from ``owner``: ``[]`` when the allowance already covers it (``exact=False``) or equals it
    (``exact=True``), ``[amount]`` usually, ``[0, amount]`` when the token would refuse changing
    a non-zero allowance directly (USDT)."""
    current = allowance(w3, token, owner, spender)
    if current == amount or (not exact and current >= amount):
        return []
    if current > 0 and amount > 0 and not approve_would_succeed(w3, token, owner, spender, amount):
        return [0, amount]
    return [amount]
