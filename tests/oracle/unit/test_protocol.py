"""oracle.protocol: each constant matches the contract source, the ABI and docs/protocol.md, and is
written once in the Python package."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from oracle.protocol import (
    BPS,
    MAX_BATCH_REPORTS,
    MILLIJOULES_PER_KWH,
    SLASHABLE,
    EndReason,
    FaultKind,
    RentalStatus,
)

ROOT = Path(__file__).resolve().parents[3]
DATA_TYPES = (ROOT / "contracts/types/DataTypes.sol").read_text()
SETTLEMENT = (ROOT / "contracts/abstracts/UsageSettlement.sol").read_text()


def solidity_enum(name: str) -> list[str]:
    body = re.search(r"enum\s+" + name + r"\s*\{([^}]*)\}", DATA_TYPES)
    assert body is not None, f"enum {name} not found in DataTypes.sol"
    return [m.strip() for m in body.group(1).split(",") if m.strip()]


def solidity_constant(source: str, name: str) -> int:
    match = re.search(r"\b" + name + r"\s*=\s*([0-9_]+)\s*;", source)
    assert match is not None, f"constant {name} not found"
    return int(match.group(1).replace("_", ""))


@pytest.mark.parametrize("enum_type", [RentalStatus, EndReason])
def test_contract_enums_match_solidity_members_in_order(enum_type):
    members = solidity_enum(enum_type.__name__)
    assert [m.contract_name for m in enum_type] == members
    assert [int(m) for m in enum_type] == list(range(len(members)))


def test_python_member_names_are_the_solidity_names_in_screaming_snake_case():
    for enum_type in (RentalStatus, EndReason):
        for member in enum_type:
            snake = re.sub(r"(?<!^)(?=[A-Z])", "_", member.contract_name).upper()
            assert member.name == snake


def test_abi_get_rental_returns_the_two_enums_as_uint8():
    abi = json.loads((ROOT / "oracle/chain/abi/GpuRentMarket.json").read_text())
    abi = abi["abi"] if isinstance(abi, dict) else abi
    get_rental = next(f for f in abi if f.get("name") == "getRental")
    fields = {c["name"]: c for c in get_rental["outputs"][0]["components"]}
    assert fields["status"]["internalType"] == "enum RentalStatus" and fields["status"]["type"] == "uint8"
    assert fields["endReason"]["internalType"] == "enum EndReason" and fields["endReason"]["type"] == "uint8"


def test_fault_kinds_span_the_contract_range_and_the_usage_flag_is_never_slashable():
    assert min(FaultKind) == solidity_constant(DATA_TYPES, "FAULT_KIND_MIN")
    assert max(FaultKind) == solidity_constant(DATA_TYPES, "FAULT_KIND_MAX")
    assert [int(k) for k in FaultKind] == list(range(min(FaultKind), max(FaultKind) + 1))
    assert FaultKind.IDLE_POWER_BUSY == solidity_constant(DATA_TYPES, "FAULT_KIND_IDLE_POWER_BUSY")
    assert SLASHABLE == frozenset(FaultKind) - {FaultKind.IDLE_POWER_BUSY}


def test_fault_kind_names_are_those_of_docs_protocol_and_the_contract_comment():
    docs = (ROOT / "docs/protocol.md").read_text()
    for kind in FaultKind:
        assert f"`{int(kind)} = {kind.name}`" in docs or f"{int(kind)} = {kind.name}" in docs
        assert f"{int(kind)} = {kind.name}" in DATA_TYPES


def test_numeric_constants_match_the_settlement_contract():
    assert MAX_BATCH_REPORTS == solidity_constant(SETTLEMENT, "_MAX_BATCH_REPORTS")
    assert MILLIJOULES_PER_KWH == solidity_constant(SETTLEMENT, "_MILLIJOULES_PER_KWH")
    assert BPS == 10_000


def test_every_member_has_a_human_label_and_name_of_never_raises():
    for enum_type in (RentalStatus, EndReason, FaultKind):
        labels = [m.label for m in enum_type]
        assert all(labels) and len(set(labels)) == len(labels)
    assert RentalStatus.name_of(2) == "Active"
    assert RentalStatus.name_of("5") == "Finalized"
    assert RentalStatus.name_of(99) == "99" and RentalStatus.name_of(None) == "None"
    assert EndReason.name_of(5) == "Silence"


def test_no_module_writes_a_protocol_enum_out_again():
    """The contract's member spellings appear as a list only in oracle/protocol.py."""
    copies = re.compile(r'"Open",\s*"Active"|"ByRenter",\s*"ByProvider"|\bclass (RentalStatus|EndReason|FaultKind)\b'
                        r"|^(ACTIVE|ENDED|FINALIZED|OPEN|CANCELLED)\s*(,[^=]*)?=\s*[0-9]", re.MULTILINE)
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "oracle").rglob("*.py")
                 if path.name != "protocol.py" and copies.search(path.read_text())]
    assert offenders == []
