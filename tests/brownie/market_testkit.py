"""Helpers for the Brownie tests of GpuRentMarket: EIP-712 report building and signing
(eth_account, independent of the oracle package), signature tampering, and custom-error
matching for ``brownie.reverts``.

Everything here is plain Python over eth_account / eth_abi so that the tests check the
contract against an independent implementation of docs/protocol.md.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, replace

from brownie.exceptions import VirtualMachineError
try:  # the decoder Brownie itself uses for typed errors, so the strings match exactly
    from faster_eth_abi import decode as abi_decode
except ImportError:  # pragma: no cover
    from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2

DOMAIN_NAME = "gpurent"
DOMAIN_VERSION = "1"

USAGE_REPORT_FIELDS = [
    {"name": "rentalId", "type": "uint256"},
    {"name": "sequence", "type": "uint64"},
    {"name": "periodEnd", "type": "uint64"},
    {"name": "availableGpuSeconds", "type": "uint64"},
    {"name": "busyGpuSeconds", "type": "uint64"},
    {"name": "energyMillijoules", "type": "uint128"},
    {"name": "carbonMilligrams", "type": "uint128"},
    {"name": "uptimeBps", "type": "uint16"},
    {"name": "faultFlags", "type": "uint32"},
    {"name": "challengesPassed", "type": "uint32"},
    {"name": "challengesFailed", "type": "uint32"},
    {"name": "telemetryHash", "type": "bytes32"},
    {"name": "signerSetVersion", "type": "uint32"},
]
FAULT_REPORT_FIELDS = [
    {"name": "rentalId", "type": "uint256"},
    {"name": "faultId", "type": "uint32"},
    {"name": "kind", "type": "uint8"},
    {"name": "observedAt", "type": "uint64"},
    {"name": "evidenceHash", "type": "bytes32"},
    {"name": "signerSetVersion", "type": "uint32"},
]
EIP712_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]

# Fault kinds (docs/protocol.md).
DOWNTIME = 1
ENERGY_MISMATCH = 2
COUNTER_PHYSICS = 3
IDLE_POWER_BUSY = 4

MJ_PER_KWH = 3_600_000_000


@dataclass(frozen=True)
class UsageReport:
    rentalId: int
    sequence: int
    periodEnd: int
    availableGpuSeconds: int
    busyGpuSeconds: int = 0
    energyMillijoules: int = 0
    carbonMilligrams: int = 0
    uptimeBps: int = 10_000
    faultFlags: int = 0
    challengesPassed: int = 0
    challengesFailed: int = 0
    telemetryHash: bytes = b"\x11" * 32
    signerSetVersion: int = 1

    def as_tuple(self) -> tuple:
        return tuple(asdict(self).values())

    def message(self) -> dict:
        return asdict(self)

    def but(self, **changes) -> "UsageReport":
        return replace(self, **changes)


@dataclass(frozen=True)
class FaultReport:
    rentalId: int
    faultId: int
    kind: int
    observedAt: int
    evidenceHash: bytes = b"\x22" * 32
    signerSetVersion: int = 1

    def as_tuple(self) -> tuple:
        return tuple(asdict(self).values())

    def message(self) -> dict:
        return asdict(self)

    def but(self, **changes) -> "FaultReport":
        return replace(self, **changes)


def _domain(chain_id: int, contract: str) -> dict:
    return {
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": int(chain_id),
        "verifyingContract": to_checksum_address(str(contract)),
    }


def _digest(full_message: dict) -> bytes:
    signable = encode_typed_data(full_message=full_message)
    # EIP-191 version 0x01: keccak256(0x19 0x01 domainSeparator structHash)
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def usage_report_digest(report: UsageReport, chain_id: int, contract: str) -> bytes:
    return _digest(
        {
            "types": {"EIP712Domain": EIP712_DOMAIN_FIELDS, "UsageReport": USAGE_REPORT_FIELDS},
            "primaryType": "UsageReport",
            "domain": _domain(chain_id, contract),
            "message": report.message(),
        }
    )


def usage_batch_digest(reports: list[UsageReport], chain_id: int, contract: str) -> bytes:
    return _digest(
        {
            "types": {
                "EIP712Domain": EIP712_DOMAIN_FIELDS,
                "UsageReportBatch": [{"name": "reports", "type": "UsageReport[]"}],
                "UsageReport": USAGE_REPORT_FIELDS,
            },
            "primaryType": "UsageReportBatch",
            "domain": _domain(chain_id, contract),
            "message": {"reports": [r.message() for r in reports]},
        }
    )


def fault_report_digest(report: FaultReport, chain_id: int, contract: str) -> bytes:
    return _digest(
        {
            "types": {"EIP712Domain": EIP712_DOMAIN_FIELDS, "FaultReport": FAULT_REPORT_FIELDS},
            "primaryType": "FaultReport",
            "domain": _domain(chain_id, contract),
            "message": report.message(),
        }
    )


# --- independent digest, straight from the EIP-712 definition, to cross-check eth_account ---

_USAGE_TYPE = (
    "UsageReport(uint256 rentalId,uint64 sequence,uint64 periodEnd,uint64 availableGpuSeconds,"
    "uint64 busyGpuSeconds,uint128 energyMillijoules,uint128 carbonMilligrams,uint16 uptimeBps,"
    "uint32 faultFlags,uint32 challengesPassed,uint32 challengesFailed,bytes32 telemetryHash,"
    "uint32 signerSetVersion)"
)
_FAULT_TYPE = (
    "FaultReport(uint256 rentalId,uint32 faultId,uint8 kind,uint64 observedAt,"
    "bytes32 evidenceHash,uint32 signerSetVersion)"
)
_BATCH_TYPE = "UsageReportBatch(UsageReport[] reports)" + _USAGE_TYPE
_DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"


def manual_domain_separator(chain_id: int, contract: str) -> bytes:
    return keccak(
        abi_encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                keccak(text=_DOMAIN_TYPE),
                keccak(text=DOMAIN_NAME),
                keccak(text=DOMAIN_VERSION),
                int(chain_id),
                to_checksum_address(str(contract)),
            ],
        )
    )


def manual_usage_struct_hash(report: UsageReport) -> bytes:
    types = ["bytes32"] + [f["type"] for f in USAGE_REPORT_FIELDS]
    return keccak(abi_encode(types, [keccak(text=_USAGE_TYPE), *report.as_tuple()]))


def manual_usage_report_digest(report: UsageReport, chain_id: int, contract: str) -> bytes:
    return keccak(
        b"\x19\x01" + manual_domain_separator(chain_id, contract) + manual_usage_struct_hash(report)
    )


def manual_usage_batch_digest(reports: list[UsageReport], chain_id: int, contract: str) -> bytes:
    array_hash = keccak(b"".join(manual_usage_struct_hash(r) for r in reports))
    struct_hash = keccak(abi_encode(["bytes32", "bytes32"], [keccak(text=_BATCH_TYPE), array_hash]))
    return keccak(b"\x19\x01" + manual_domain_separator(chain_id, contract) + struct_hash)


def manual_fault_report_digest(report: FaultReport, chain_id: int, contract: str) -> bytes:
    types = ["bytes32"] + [f["type"] for f in FAULT_REPORT_FIELDS]
    struct_hash = keccak(abi_encode(types, [keccak(text=_FAULT_TYPE), *report.as_tuple()]))
    return keccak(b"\x19\x01" + manual_domain_separator(chain_id, contract) + struct_hash)


# --- signing and tampering ---


def sign_digest(key, digest: bytes) -> bytes:
    """65-byte r || s || v signature (v in {27, 28}, low s) of a raw 32-byte digest."""
    acct = Account.from_key(key)
    sign = getattr(Account, "unsafe_sign_hash", None) or Account._sign_hash
    signed = sign(digest, acct.key)
    assert signed.s <= SECP256K1_HALF_N, "eth_account returned a high-s signature"
    return (
        signed.r.to_bytes(32, "big") + signed.s.to_bytes(32, "big") + bytes([signed.v])
    )


def split_sig(sig: bytes) -> tuple[int, int, int]:
    return int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]


def join_sig(r: int, s: int, v: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def malleate(sig: bytes) -> bytes:
    """The other valid ECDSA signature of the same digest by the same key: (r, n - s, v ^ 1)."""
    r, s, v = split_sig(sig)
    return join_sig(r, SECP256K1_N - s, 27 if v == 28 else 28)


def recover(digest: bytes, sig: bytes) -> str:
    r, s, v = split_sig(sig)
    return Account._recover_hash(digest, vrs=(v, r, s))


def zero_recovering_signature(digest: bytes) -> bytes:
    """A 65-byte signature that raw ecrecover maps to address(0) for this digest.

    r = 0 is not a point on the curve, so the precompile returns nothing and Solidity's
    ``ecrecover`` yields address(0). (A naive verifier that compares against an uninitialised
    signer slot would accept it.)
    """
    return join_sig(0, 1, 27)


def bad_v_signature(sig: bytes, v: int = 29) -> bytes:
    r, s, _ = split_sig(sig)
    return join_sig(r, s, v)


# --- custom errors ---


def error_selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def encode_error(signature: str, *args) -> str:
    types = _error_arg_types(signature)
    return "0x" + (error_selector(signature) + abi_encode(types, list(args))).hex()


def _error_arg_types(signature: str) -> list[str]:
    inner = signature[signature.index("(") + 1 : signature.rindex(")")]
    if not inner:
        return []
    # top-level split (tuples are not used in our errors, but keep it honest)
    depth, parts, cur = 0, [], ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    parts.append(cur)
    return parts


def expected_revert_messages(signature: str, *args) -> set[str]:
    """The strings Brownie may report for a custom error: decoded (ABI known) or raw hex."""
    data = encode_error(signature, *args)
    name = signature[: signature.index("(")]
    types = _error_arg_types(signature)
    decoded = abi_decode(types, bytes.fromhex(data[10:])) if types else ()
    return {
        f"{name}: {', '.join(str(r) for r in decoded)}",
        f"Unknown typed error: {data}",
        f"typed error: {data}",
    }


@contextlib.contextmanager
def reverts_with(signature: str, *args, any_args: bool = False):
    """``with reverts_with("GpuRentMarket_Foo(uint256,address)", 7, alice): ...``

    Asserts the call reverts with exactly that custom error and those arguments (or, with
    ``any_args=True``, just that error's selector).
    """
    try:
        yield
    except VirtualMachineError as exc:
        actual = exc.revert_msg or ""
        name = signature[: signature.index("(")]
        if any_args:
            sel = "0x" + error_selector(signature).hex()
            ok = actual.startswith(f"{name}:") or actual == name or sel in actual
            assert ok, f"expected revert {signature}, got {actual!r}"
            return
        expected = expected_revert_messages(signature, *args)
        # an error without arguments decodes to "Name: "
        if not _error_arg_types(signature):
            expected |= {name, f"{name}: "}
        norm = {e.rstrip().lower() for e in expected}
        assert actual.rstrip().lower() in norm, (
            f"expected revert {signature} {args}, got {actual!r}"
        )
    else:
        raise AssertionError(f"call did not revert (expected {signature})")


def cost(available_gpu_seconds: int, energy_mj: int, price_per_gpu_hour: int, price_per_kwh: int) -> int:
    """docs/protocol.md settlement arithmetic."""
    return (available_gpu_seconds * price_per_gpu_hour) // 3600 + (energy_mj * price_per_kwh) // MJ_PER_KWH


# --- events ---


def plain(value):
    """Brownie return/event values as plain Python (ints, checksummed address strings, bytes
    as 0x-hex, tuples) so that they compare with ``==`` against literals."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, str):
        if value.startswith("0x") and len(value) == 42:
            return to_checksum_address(value)
        return value.lower() if value.startswith("0x") else value
    if hasattr(value, "address") and isinstance(getattr(value, "address"), str):
        return to_checksum_address(value.address)
    if isinstance(value, (list, tuple)) or hasattr(value, "__iter__"):
        return tuple(plain(v) for v in value)
    return value


def event_args(event) -> tuple:
    """The arguments of one decoded event, in ABI order, as plain Python values."""
    return tuple(plain(event[k]) for k in event.keys())


def settled_reports(tx) -> list[tuple]:
    """(rentalId, sequence, payment) of every report `tx` settled, in log order: the entries of
    settleBatch's UsageBatchSettled (emitted first; one word each, rentalId << 128 |
    sequence << 96 | payment), then each UsageSettled."""
    out = []
    if "UsageBatchSettled" in tx.events:
        for event in tx.events["UsageBatchSettled"]:
            for word in (int(v) for v in event["settled"]):
                out.append((word >> 128, (word >> 96) & (2**32 - 1), word & (2**96 - 1)))
    if "UsageSettled" in tx.events:
        out += [event_args(event) for event in tx.events["UsageSettled"]]
    return out
