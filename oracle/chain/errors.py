"""Errors of the chain client and decoding of revert data into the contract's custom errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

from oracle.errors import ChainError


class TransactionRevertedError(ChainError):
    """A call or transaction reverted; carries the decoded custom error when the ABI knows it.

    ``error_name`` is the Solidity error's name (``GpuRentMarket_StaleSequence``, ``Error`` for
    ``require`` strings, ``Panic`` for panics, ``""`` when the revert carried no data) and
    ``error_args`` its decoded arguments by name. ``tx_hash`` and ``receipt`` are set when the
    revert happened in a mined transaction (status 0), not in the pre-flight estimate.
    """

    def __init__(
        self,
        error_name: str,
        error_args: dict[str, Any] | None = None,
        *,
        data: str = "",
        function: str = "",
        tx_hash: str | None = None,
        receipt: Any = None,
    ) -> None:
        self.error_name = error_name
        self.error_args = dict(error_args or {})
        self.data = data
        self.function = function
        self.tx_hash = tx_hash
        self.receipt = receipt
        args = ", ".join(f"{k}={v!r}" for k, v in self.error_args.items())
        where = f"{function}: " if function else ""
        mined = f" (mined in {tx_hash})" if tx_hash else ""
        name = error_name or "revert without data"
        super().__init__(f"{where}{name}({args}){mined}")


class RpcUnavailableError(ChainError):
    """The RPC endpoint kept failing with transient errors after every retry."""


class FeeCapExceededError(ChainError):
    """The network's fee is above the configured cap; the transaction was not sent."""


class TransactionTimeoutError(ChainError):
    """A sent transaction was not mined in time, even after fee bumps."""


class NonceError(ChainError):
    """The account's nonce could not be reconciled with the chain."""


PANIC_CODES = {
    0x00: "generic",
    0x01: "assert",
    0x11: "arithmetic overflow or underflow",
    0x12: "division by zero",
    0x21: "invalid enum value",
    0x22: "bad storage byte array",
    0x31: "pop on empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "zero internal function",
}


def _abi_type(param: dict[str, Any]) -> str:
    """Canonical ABI type of a parameter, expanding tuples."""
    t = param["type"]
    if t.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param.get("components", []))
        return f"({inner}){t[5:]}"
    return t


@dataclass
class ErrorDecoder:
    """Maps 4-byte selectors to the custom errors of one or more ABIs."""

    errors: dict[bytes, tuple[str, list[str], list[str]]] = field(default_factory=dict)

    @classmethod
    def from_abis(cls, *abis: Iterable[dict[str, Any]]) -> "ErrorDecoder":
        dec = cls()
        for abi in abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                types = [_abi_type(p) for p in item.get("inputs", [])]
                names = [p.get("name") or f"arg{i}" for i, p in enumerate(item.get("inputs", []))]
                sig = f"{item['name']}({','.join(types)})"
                dec.errors[keccak(text=sig)[:4]] = (item["name"], names, types)
        dec.errors.setdefault(keccak(text="Error(string)")[:4], ("Error", ["message"], ["string"]))
        dec.errors.setdefault(keccak(text="Panic(uint256)")[:4], ("Panic", ["code"], ["uint256"]))
        return dec

    def decode(self, data: bytes | str | None) -> tuple[str, dict[str, Any]]:
        """(error name, args by name); ("", {}) without data; ("UnknownError(0x...)", {}) else."""
        raw = _to_bytes(data)
        if len(raw) < 4:
            return "", {}
        entry = self.errors.get(raw[:4])
        if entry is None:
            return f"UnknownError(0x{raw[:4].hex()})", {"data": "0x" + raw.hex()}
        name, names, types = entry
        try:
            values = abi_decode(types, raw[4:])
        except Exception:
            return name, {"data": "0x" + raw.hex()}
        args = {n: _plain(v, t) for n, v, t in zip(names, values, types)}
        if name == "Panic":
            args["reason"] = PANIC_CODES.get(args["code"], "unknown")
        return name, args


def _plain(value: Any, abi_type: str = "") -> Any:
    if abi_type == "address" and isinstance(value, str):
        return to_checksum_address(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, (list, tuple)):
        inner = abi_type[: abi_type.rindex("[")] if abi_type.endswith("]") else ""
        return type(value)(_plain(v, inner) for v in value)
    return value


def _to_bytes(data: bytes | str | None) -> bytes:
    if data is None:
        return b""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if isinstance(data, dict):  # some nodes nest {"data": "0x..."}
        return _to_bytes(data.get("data"))
    s = str(data)
    if s.startswith("0x") or s.startswith("0X"):
        s = s[2:]
    try:
        return bytes.fromhex(s)
    except ValueError:
        return b""
