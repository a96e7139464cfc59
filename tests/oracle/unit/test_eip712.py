"""EIP-712 digests computed by hand (eth_abi + keccak) against eth_account's implementation."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_account._utils.encode_typed_data.encoding_and_hashing import hash_domain
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle.attestation.eip712 import (
    FAULT_REPORT_TYPE,
    USAGE_REPORT_TYPE,
    FaultReport,
    ReportFieldError,
    UsageReport,
    domain_separator,
    fault_report_digest,
    typed_data,
    usage_batch_digest,
    usage_report_digest,
)
from oracle.metering import FaultKind


REPO_ROOT = Path(__file__).resolve().parents[3]
CHAIN_ID = 31337
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def uint(bits: int):
    return st.integers(0, 2**bits - 1)


usage_reports = st.builds(
    UsageReport,
    rental_id=uint(256), sequence=uint(64), period_end=uint(64),
    available_gpu_seconds=uint(64), busy_gpu_seconds=uint(64),
    energy_millijoules=uint(128), carbon_milligrams=uint(128),
    uptime_bps=st.integers(0, 10_000), fault_flags=uint(32),
    challenges_passed=uint(32), challenges_failed=uint(32),
    telemetry_hash=st.binary(min_size=32, max_size=32), signer_set_version=uint(32),
)
fault_reports = st.builds(
    FaultReport,
    rental_id=uint(256), fault_id=uint(32), kind=uint(8), observed_at=uint(64),
    evidence_hash=st.binary(min_size=32, max_size=32), signer_set_version=uint(32),
)
chain_ids = st.one_of(st.just(CHAIN_ID), st.integers(1, 2**256 - 1))
contracts = st.binary(min_size=20, max_size=20)


def eth_account_digest(message, chain_id, contract) -> bytes:
    return _hash_eip191_message(encode_typed_data(full_message=typed_data(message, chain_id,
                                                                          contract)))


def sample_report(**changes) -> UsageReport:
    fields = dict(rental_id=7, sequence=3, period_end=1_795_743_193, available_gpu_seconds=85,
                  busy_gpu_seconds=49, energy_millijoules=35_899_367, carbon_milligrams=4796,
                  uptime_bps=10_000, fault_flags=0, challenges_passed=2, challenges_failed=1,
                  telemetry_hash=b"\x11" * 32,
                  signer_set_version=1)
    fields.update(changes)
    return UsageReport(**fields)


def test_type_strings_match_the_protocol_document():
    protocol = (REPO_ROOT / "docs" / "protocol.md").read_text()
    assert re.search(r"^" + re.escape(USAGE_REPORT_TYPE) + r"$", protocol, re.M)
    assert re.search(r"^" + re.escape(FAULT_REPORT_TYPE) + r"$", protocol, re.M)
    assert re.search(r"^UsageReportBatch\(UsageReport\[\] reports\)$", protocol, re.M)


@settings(max_examples=100, deadline=None)
@given(chain_ids, contracts)
def test_domain_separator_matches_eth_account(chain_id, contract):
    domain = typed_data(sample_report(), chain_id, contract)["domain"]
    assert domain_separator(chain_id, contract) == hash_domain(domain)
    assert domain["name"] == "gpurent" and domain["version"] == "1"


@settings(max_examples=100, deadline=None)
@given(usage_reports, chain_ids, contracts)
def test_usage_report_digest_matches_eth_account(report, chain_id, contract):
    assert usage_report_digest(report, chain_id, contract) == eth_account_digest(
        report, chain_id, contract)


@settings(max_examples=100, deadline=None)
@given(fault_reports, chain_ids, contracts)
def test_fault_report_digest_matches_eth_account(report, chain_id, contract):
    assert fault_report_digest(report, chain_id, contract) == eth_account_digest(
        report, chain_id, contract)


@settings(max_examples=60, deadline=None)
@given(st.lists(usage_reports, max_size=4), chain_ids, contracts)
def test_usage_batch_digest_matches_eth_account(reports, chain_id, contract):
    assert usage_batch_digest(reports, chain_id, contract) == eth_account_digest(
        reports, chain_id, contract)


def test_usage_batch_digest_differs_from_the_single_report_digest():
    report = sample_report()
    assert usage_batch_digest([report], CHAIN_ID, CONTRACT) != usage_report_digest(
        report, CHAIN_ID, CONTRACT)
    assert usage_batch_digest([report, report], CHAIN_ID, CONTRACT) != usage_batch_digest(
        [report], CHAIN_ID, CONTRACT)


def test_usage_report_digest_binds_chain_and_contract():
    report = sample_report()
    base = usage_report_digest(report, CHAIN_ID, CONTRACT)
    assert usage_report_digest(report, CHAIN_ID + 1, CONTRACT) != base
    assert usage_report_digest(report, CHAIN_ID, "0x" + "00" * 19 + "01") != base
    assert usage_report_digest(report, CHAIN_ID, CONTRACT.lower()) == base


USAGE_BITS = {"rental_id": 256, "sequence": 64, "period_end": 64, "available_gpu_seconds": 64,
              "busy_gpu_seconds": 64, "energy_millijoules": 128, "carbon_milligrams": 128,
              "uptime_bps": 16, "fault_flags": 32, "challenges_passed": 32, "challenges_failed": 32,
              "signer_set_version": 32}


@pytest.mark.parametrize("field", sorted(USAGE_BITS))
@pytest.mark.parametrize("bad", ["negative", "too_big", "float", "bool", "text"])
def test_usage_report_rejects_a_field_outside_its_type(field, bad):
    value = {"negative": -1, "too_big": 2 ** USAGE_BITS[field], "float": 1.0, "bool": True,
             "text": "1"}[bad]
    with pytest.raises(ReportFieldError, match=field):
        sample_report(**{field: value})


def test_usage_report_accepts_each_field_at_its_maximum():
    maxima = {name: 2**bits - 1 for name, bits in USAGE_BITS.items()}
    maxima["uptime_bps"] = 10_000
    report = sample_report(**maxima)
    assert usage_report_digest(report, CHAIN_ID, CONTRACT) == eth_account_digest(
        report, CHAIN_ID, CONTRACT)


def test_usage_report_rejects_uptime_above_ten_thousand_bps():
    with pytest.raises(ReportFieldError, match="uptime"):
        sample_report(uptime_bps=10_001)


@pytest.mark.parametrize("value", [b"\x11" * 31, b"\x11" * 33, "0x" + "11" * 32, None])
def test_usage_report_rejects_a_telemetry_hash_that_is_not_32_bytes(value):
    with pytest.raises(ReportFieldError, match="telemetry_hash"):
        sample_report(telemetry_hash=value)


@pytest.mark.parametrize("change", [{"fault_id": 2**32}, {"kind": 256}, {"kind": -1},
                                    {"observed_at": 2**64}, {"evidence_hash": b""},
                                    {"signer_set_version": 2**32}, {"rental_id": 2**256}])
def test_fault_report_rejects_a_field_outside_its_type(change):
    fields = dict(rental_id=7, fault_id=0, kind=1, observed_at=1, evidence_hash=b"\x22" * 32,
                  signer_set_version=1)
    with pytest.raises(ReportFieldError):
        FaultReport(**{**fields, **change})


def test_fault_report_stores_a_fault_kind_as_a_plain_int():
    report = FaultReport(7, 0, FaultKind.DOWNTIME, 1, b"\x22" * 32, 1)
    assert type(report.kind) is int and report.kind == 1


@pytest.mark.parametrize("chain_id, contract", [(0, CONTRACT), (1.0, CONTRACT), (1, "0x1234"),
                                                (1, b"\x00" * 19), (2**256, CONTRACT)])
def test_domain_separator_rejects_bad_chain_id_or_contract(chain_id, contract):
    with pytest.raises(ReportFieldError):
        domain_separator(chain_id, contract)


def test_usage_reports_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        sample_report().sequence = 4
