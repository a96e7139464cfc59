"""EIP-712 typed data of docs/protocol.md, hashed directly (eth_abi + keccak), byte for byte
what the contract's ``_hashTypedDataV4`` computes.

``digest = keccak256(0x19 0x01 || domainSeparator || hashStruct(message))`` where
``hashStruct(s) = keccak256(typeHash || enc(field_1) || ...)``; atomic fields encode as their
32-byte ABI words, ``string`` as ``keccak256(bytes)``, an array of structs as the keccak256 of
the concatenated ``hashStruct`` of its elements.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields
from enum import IntEnum
from functools import lru_cache
from typing import Sequence

from eth_abi import encode
from eth_utils import is_address, keccak, to_canonical_address, to_checksum_address

from oracle.errors import GpurentError
from oracle.protocol import BPS

DOMAIN_NAME = "gpurent"
DOMAIN_VERSION = "1"

DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
USAGE_REPORT_TYPE = (
    "UsageReport(uint256 rentalId,uint64 sequence,uint64 periodEnd,uint64 availableGpuSeconds,"
    "uint64 busyGpuSeconds,uint128 energyMillijoules,uint128 carbonMilligrams,uint16 uptimeBps,"
    "uint32 faultFlags,uint32 challengesPassed,uint32 challengesFailed,bytes32 telemetryHash,"
    "uint32 signerSetVersion)"
)
# A struct's encoded type is followed by the types it references, sorted by name (EIP-712).
USAGE_REPORT_BATCH_TYPE = "UsageReportBatch(UsageReport[] reports)" + USAGE_REPORT_TYPE
FAULT_REPORT_TYPE = (
    "FaultReport(uint256 rentalId,uint32 faultId,uint8 kind,uint64 observedAt,"
    "bytes32 evidenceHash,uint32 signerSetVersion)"
)

DOMAIN_TYPEHASH = keccak(text=DOMAIN_TYPE)
USAGE_REPORT_TYPEHASH = keccak(text=USAGE_REPORT_TYPE)
USAGE_REPORT_BATCH_TYPEHASH = keccak(text=USAGE_REPORT_BATCH_TYPE)
FAULT_REPORT_TYPEHASH = keccak(text=FAULT_REPORT_TYPE)

# ABI type of each dataclass field, in struct order (snake_case of the struct's field names).
_USAGE_REPORT_ABI = (
    ("rental_id", "uint256"),
    ("sequence", "uint64"),
    ("period_end", "uint64"),
    ("available_gpu_seconds", "uint64"),
    ("busy_gpu_seconds", "uint64"),
    ("energy_millijoules", "uint128"),
    ("carbon_milligrams", "uint128"),
    ("uptime_bps", "uint16"),
    ("fault_flags", "uint32"),
    ("challenges_passed", "uint32"),
    ("challenges_failed", "uint32"),
    ("telemetry_hash", "bytes32"),
    ("signer_set_version", "uint32"),
)
_FAULT_REPORT_ABI = (
    ("rental_id", "uint256"),
    ("fault_id", "uint32"),
    ("kind", "uint8"),
    ("observed_at", "uint64"),
    ("evidence_hash", "bytes32"),
    ("signer_set_version", "uint32"),
)
MAX_UPTIME_BPS = BPS


class ReportFieldError(GpurentError, ValueError):
    """A report field outside its Solidity type's range (or of the wrong Python type)."""


def _check_fields(obj: object, abi: Sequence[tuple[str, str]]) -> None:
    struct = type(obj).__name__
    for name, abi_type in abi:
        value = getattr(obj, name)
        if abi_type == "bytes32":
            if type(value) is not bytes or len(value) != 32:
                raise ReportFieldError(
                    f"{struct}.{name} must be 32 bytes (bytes32), got {value!r}"
                )
            continue
        bits = int(abi_type[4:])
        if type(value) is not int:
            raise ReportFieldError(
                f"{struct}.{name} must be an int ({abi_type}), got {type(value).__name__}"
                f" {value!r}"
            )
        if not 0 <= value < 1 << bits:
            raise ReportFieldError(
                f"{struct}.{name} = {value} is outside {abi_type} (0 .. 2**{bits} - 1)"
            )


@dataclass(frozen=True, slots=True)
class UsageReport:
    """``UsageReport`` of docs/protocol.md; every field range-checked on construction."""

    rental_id: int
    sequence: int
    period_end: int
    available_gpu_seconds: int
    busy_gpu_seconds: int
    energy_millijoules: int
    carbon_milligrams: int
    uptime_bps: int
    fault_flags: int
    #: Cumulative proof-of-GPU challenges of the rental judged so far: passed, and failed
    #: (missed included). A failed challenge's period is already left out of the totals.
    challenges_passed: int
    challenges_failed: int
    telemetry_hash: bytes
    signer_set_version: int

    def __post_init__(self) -> None:
        _check_fields(self, _USAGE_REPORT_ABI)
        if self.uptime_bps > MAX_UPTIME_BPS:
            raise ReportFieldError(f"UsageReport.uptime_bps = {self.uptime_bps} is above 10000")

    def struct_hash(self) -> bytes:
        return keccak(USAGE_REPORT_TYPEHASH + encode([t for _, t in _USAGE_REPORT_ABI],
                                                     list(astuple(self))))

    def to_message(self) -> dict[str, int | str]:
        """The struct as EIP-712 message data (camelCase keys, ``0x`` hex for bytes32)."""
        return _to_message(self, _USAGE_REPORT_ABI)


@dataclass(frozen=True, slots=True)
class FaultReport:
    """``FaultReport`` of docs/protocol.md; every field range-checked on construction."""

    rental_id: int
    fault_id: int
    kind: int
    observed_at: int
    evidence_hash: bytes
    signer_set_version: int

    def __post_init__(self) -> None:
        # An IntEnum (FaultKind) is stored as its plain int so the dataclass stays pure data.
        if isinstance(self.kind, IntEnum):
            object.__setattr__(self, "kind", int(self.kind))
        _check_fields(self, _FAULT_REPORT_ABI)

    def struct_hash(self) -> bytes:
        return keccak(FAULT_REPORT_TYPEHASH + encode([t for _, t in _FAULT_REPORT_ABI],
                                                     list(astuple(self))))

    def to_message(self) -> dict[str, int | str]:
        return _to_message(self, _FAULT_REPORT_ABI)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _to_message(obj: object, abi: Sequence[tuple[str, str]]) -> dict[str, int | str]:
    out: dict[str, int | str] = {}
    for name, abi_type in abi:
        value = getattr(obj, name)
        out[_camel(name)] = "0x" + value.hex() if abi_type == "bytes32" else value
    return out


def _contract_bytes(contract: str | bytes) -> bytes:
    if isinstance(contract, bytes) and len(contract) == 20:
        return contract
    if isinstance(contract, str) and is_address(contract):
        return to_canonical_address(contract)
    raise ReportFieldError(f"verifying contract must be a 20-byte address, got {contract!r}")


def _chain_id(chain_id: int) -> int:
    if type(chain_id) is not int or not 0 < chain_id < 1 << 256:
        raise ReportFieldError(f"chain id must be a positive uint256, got {chain_id!r}")
    return chain_id


def domain_separator(chain_id: int, contract: str | bytes) -> bytes:
    """``hashStruct(EIP712Domain)`` for ("gpurent", "1", chain_id, contract)."""
    return _domain_separator(_chain_id(chain_id), _contract_bytes(contract))


@lru_cache(maxsize=64)
def _domain_separator(chain_id: int, contract: bytes) -> bytes:
    return keccak(encode(
        ["bytes32", "bytes32", "bytes32", "uint256", "address"],
        [DOMAIN_TYPEHASH, keccak(text=DOMAIN_NAME), keccak(text=DOMAIN_VERSION), chain_id,
         contract],
    ))


def _typed_digest(struct_hash: bytes, chain_id: int, contract: str | bytes) -> bytes:
    return keccak(b"\x19\x01" + domain_separator(chain_id, contract) + struct_hash)


def usage_report_digest(report: UsageReport, chain_id: int, contract: str | bytes) -> bytes:
    """The 32-byte digest a node signs for one usage report."""
    if not isinstance(report, UsageReport):
        raise ReportFieldError(f"not a UsageReport: {report!r}")
    return _typed_digest(report.struct_hash(), chain_id, contract)


def usage_batch_struct_hash(reports: Sequence[UsageReport]) -> bytes:
    for report in reports:
        if not isinstance(report, UsageReport):
            raise ReportFieldError(f"not a UsageReport: {report!r}")
    array_hash = keccak(b"".join(report.struct_hash() for report in reports))
    return keccak(USAGE_REPORT_BATCH_TYPEHASH + array_hash)


def usage_batch_digest(
    reports: Sequence[UsageReport], chain_id: int, contract: str | bytes
) -> bytes:
    """The digest of ``UsageReportBatch(UsageReport[] reports)``: one signature, many rentals."""
    return _typed_digest(usage_batch_struct_hash(list(reports)), chain_id, contract)


def fault_report_digest(report: FaultReport, chain_id: int, contract: str | bytes) -> bytes:
    """The 32-byte digest a node signs for one fault report."""
    if not isinstance(report, FaultReport):
        raise ReportFieldError(f"not a FaultReport: {report!r}")
    return _typed_digest(report.struct_hash(), chain_id, contract)


def _eip712_types() -> dict[str, list[dict[str, str]]]:
    def members(type_string: str) -> list[dict[str, str]]:
        inner = type_string[type_string.index("(") + 1: type_string.index(")")]
        return [dict(zip(("type", "name"), member.split(" "))) for member in inner.split(",")]

    return {
        "EIP712Domain": members(DOMAIN_TYPE),
        "UsageReport": members(USAGE_REPORT_TYPE),
        "UsageReportBatch": [{"name": "reports", "type": "UsageReport[]"}],
        "FaultReport": members(FAULT_REPORT_TYPE),
    }


def typed_data(
    message: UsageReport | FaultReport | Sequence[UsageReport],
    chain_id: int,
    contract: str | bytes,
) -> dict:
    """The full EIP-712 JSON (``eth_signTypedData_v4`` shape) for wallets and cross-checks."""
    all_types = _eip712_types()
    if isinstance(message, UsageReport):
        primary, names, data = "UsageReport", ("UsageReport",), message.to_message()
    elif isinstance(message, FaultReport):
        primary, names, data = "FaultReport", ("FaultReport",), message.to_message()
    else:
        primary, names = "UsageReportBatch", ("UsageReportBatch", "UsageReport")
        data = {"reports": [report.to_message() for report in message]}
    return {
        "types": {name: all_types[name] for name in ("EIP712Domain", *names)},
        "primaryType": primary,
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": _chain_id(chain_id),
            "verifyingContract": to_checksum_address(_contract_bytes(contract)),
        },
        "message": data,
    }


assert [f.name for f in fields(UsageReport)] == [name for name, _ in _USAGE_REPORT_ABI]
assert [f.name for f in fields(FaultReport)] == [name for name, _ in _FAULT_REPORT_ABI]

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "FAULT_REPORT_TYPE",
    "FaultReport",
    "ReportFieldError",
    "USAGE_REPORT_BATCH_TYPE",
    "USAGE_REPORT_TYPE",
    "UsageReport",
    "domain_separator",
    "fault_report_digest",
    "typed_data",
    "usage_batch_digest",
    "usage_report_digest",
]
