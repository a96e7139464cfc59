"""Signed reports as the node records and serves them: the recorded bytes of a report dataclass
(canonical JSON of integers and 0x-hex) and the results of signing."""

from __future__ import annotations

import inspect
import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from oracle.errors import SigningError


@dataclass(frozen=True, slots=True)
class SignedReport:
    """A usage or fault report as recorded and signed by this node."""

    report: Any  # oracle.attestation.eip712.UsageReport or FaultReport
    digest: bytes
    signature: bytes
    signer: str
    newly_signed: bool = True  # False: the signature was made earlier and is returned again


@dataclass(frozen=True, slots=True)
class FaultOutcome:
    fault_id: int
    signed: SignedReport | None
    refused: str | None  # why the node will not sign this fault report


def report_fields(report: Any) -> dict[str, Any]:
    """A report dataclass as JSON-ready fields: ints stay ints, bytes become 0x-hex."""
    out = {}
    for name, value in asdict(report).items():
        if isinstance(value, (bytes, bytearray)):
            value = "0x" + bytes(value).hex()
        elif isinstance(value, int) and not isinstance(value, bool):
            value = int(value)  # IntEnum -> int
        else:
            raise SigningError(f"report field {name}={value!r} is neither an integer nor bytes")
        out[name] = value
    return out


def report_bytes(report: Any) -> bytes:
    """The bytes recorded for a report: canonical JSON of its fields (integers and hex only)."""
    return json.dumps(report_fields(report), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def report_from_bytes(cls: type, body: bytes) -> Any:
    """Rebuild a report dataclass from :func:`report_bytes` (bytes fields from 0x-hex)."""
    data = json.loads(body)
    values = {}
    for field in fields(cls):
        value = data[field.name]
        values[field.name] = bytes.fromhex(value[2:]) if isinstance(value, str) and value.startswith("0x") else value
    return cls(**values)


def challenge_fields(totals: Any) -> dict[str, int]:
    """challenges_passed/failed for build_usage_report, once the report has those fields."""
    from oracle.attestation.reports import build_usage_report

    if "challenges_passed" not in inspect.signature(build_usage_report).parameters:
        return {}
    return {"challenges_passed": totals.challenges_passed, "challenges_failed": totals.challenges_failed}
