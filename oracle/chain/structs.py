"""Contract structs as Python values: reports and offer terms in ABI order (from dataclasses,
snake- or camelCase mappings, or tuples), struct return values as dicts keyed by the ABI's names,
a rental's derived uptime, and signatures recovered and packed in the order the contract wants."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any, Iterable, Mapping, Sequence

from eth_keys import keys as eth_keys_mod
from web3 import Web3

from oracle.errors import ChainError

USAGE_REPORT_FIELDS = (
    "rental_id", "sequence", "period_end", "available_gpu_seconds", "busy_gpu_seconds",
    "energy_millijoules", "carbon_milligrams", "uptime_bps", "fault_flags", "challenges_passed",
    "challenges_failed", "telemetry_hash", "signer_set_version",
)
FAULT_REPORT_FIELDS = ("rental_id", "fault_id", "kind", "observed_at", "evidence_hash", "signer_set_version")
OFFER_TERMS_FIELDS = (
    "gpu_model", "gpu_count", "payment_token", "price_per_gpu_hour", "price_per_kwh",
    "region", "grid_intensity_g_per_kwh", "max_duration_seconds", "min_uptime_bps", "max_gap_seconds", "agent",
)
ZERO_BYTES32 = b"\0" * 32
_BYTES32_FIELDS = {"telemetry_hash", "evidence_hash", "gpu_model", "region"}
# Struct fields a caller may leave out (the offer's gap promise: none).
_OPTIONAL_FIELDS = {"max_gap_seconds": 0}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


USAGE_REPORT_ABI_NAMES = tuple(_camel(name) for name in USAGE_REPORT_FIELDS)  # as the ABI names them


def _bytes32(value: Any, name: str) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    elif isinstance(value, str) and value.startswith("0x") and len(value) == 66:
        raw = bytes.fromhex(value[2:])
    elif isinstance(value, str) and name in ("gpu_model", "region"):
        raw = value.encode("utf-8")
        if len(raw) > 32:
            raise ChainError(f"{name} {value!r} is longer than 32 bytes")
        raw = raw.ljust(32, b"\0")
    else:
        raise ChainError(f"{name} must be 32 bytes (bytes or 0x-hex), got {value!r}")
    if len(raw) != 32:
        raise ChainError(f"{name} must be 32 bytes, got {len(raw)}")
    return raw


def struct_tuple(value: Any, names: Sequence[str]) -> tuple:
    """A struct argument in ABI order from a dataclass, a mapping (snake or camel case) or a tuple."""
    if isinstance(value, (tuple, list)):
        if len(value) != len(names):
            raise ChainError(f"expected {len(names)} struct fields, got {len(value)}")
        items = dict(zip(names, value))
    else:
        if is_dataclass(value) and not isinstance(value, type):
            data: Mapping[str, Any] = {f.name: getattr(value, f.name) for f in fields(value)}
        elif isinstance(value, Mapping):
            data = value
        else:
            raise ChainError(f"cannot read struct fields from {type(value).__name__}")
        items = {}
        for n in names:
            if n in data:
                items[n] = data[n]
            elif _camel(n) in data:
                items[n] = data[_camel(n)]
            elif n in _OPTIONAL_FIELDS:
                items[n] = _OPTIONAL_FIELDS[n]
            else:
                raise ChainError(f"struct field {n!r} is missing")
    out = []
    for n in names:
        v = items[n]
        if n in _BYTES32_FIELDS:
            out.append(_bytes32(v, n))
        elif n in ("payment_token", "agent"):
            out.append(Web3.to_checksum_address(v))
        else:
            out.append(int(v))
    return tuple(out)


def usage_report_tuple(report: Any) -> tuple:
    return struct_tuple(report, USAGE_REPORT_FIELDS)


def fault_report_tuple(report: Any) -> tuple:
    return struct_tuple(report, FAULT_REPORT_FIELDS)


def rental_uptime_bps(rental: Mapping[str, Any]) -> int:
    """Attested uptime of a stored rental, as the contract derives it (uptime is not stored):
    ``availableGpuSeconds * 10000 / (gpuCount * (end - startedAt))``, capped at 10000, where
    ``end`` is ``endedAt`` once ended, else the last settlement; 0 before any time passed."""
    started = int(rental["startedAt"])
    end = int(rental["endedAt"]) or int(rental["lastSettledAt"])
    rented = int(rental["gpuCount"]) * max(0, end - started)
    if rented == 0:
        return 0
    return min(10_000, int(rental["availableGpuSeconds"]) * 10_000 // rented)


def recover(digest: bytes, signature: bytes) -> str:
    """Checksummed signer of a 65-byte (v in 27/28 or 0/1) signature over a 32-byte digest."""
    if len(signature) != 65:
        raise ChainError(f"signature must be 65 bytes, got {len(signature)}")
    v = signature[64]
    v = v - 27 if v >= 27 else v
    sig = eth_keys_mod.Signature(signature[:64] + bytes([v]))
    return sig.recover_public_key_from_msg_hash(digest).to_checksum_address()


def pack_signatures(digest: bytes, signatures: Iterable[bytes]) -> bytes:
    """Concatenate 65-byte signatures in strictly ascending recovered-signer order.

    Duplicate signers are dropped (the contract rejects a repeated signer).
    """
    by_signer: dict[int, bytes] = {}
    for sig in signatures:
        by_signer.setdefault(int(recover(digest, sig), 16), bytes(sig))
    return b"".join(by_signer[k] for k in sorted(by_signer))


def _named(outputs: Sequence[dict[str, Any]], value: Any) -> Any:
    """Decode web3's positional return value into dicts keyed by the ABI's component names."""
    if len(outputs) == 1:
        return _named_one(outputs[0], value)
    return tuple(_named_one(o, v) for o, v in zip(outputs, value))


def _named_one(param: dict[str, Any], value: Any) -> Any:
    t = param["type"]
    if t == "tuple":
        return {c["name"]: _named_one(c, v) for c, v in zip(param["components"], value)}
    if t.startswith("tuple["):
        inner = dict(param, type="tuple")
        return [_named_one(inner, v) for v in value]
    return value
