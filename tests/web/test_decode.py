"""Settlement and slash calldata decoded back to the reports and the signers who signed them, for
each way a settlement reaches the market (settle, settleBatch, and the operator registry's
settleFor / settleBatchFor); a call through any other contract yields no reports, not a guess."""

from __future__ import annotations

import pytest
from eth_account import Account
from web3 import Web3

from oracle.attestation.eip712 import (FaultReport, UsageReport, fault_report_digest, usage_batch_digest,
                                       usage_report_digest)
from oracle.attestation.signing import sign_digest
from oracle.chain.artifacts import load_abi
from oracle.chain.client import fault_report_tuple, usage_report_tuple
from oracle.web.decode import CalldataDecoder

KEYS = [bytes.fromhex(f"{i:02x}" * 32) for i in (0xC1, 0xC2, 0xC3)]
MARKET = Web3.to_checksum_address("0x" + "ab" * 20)
REGISTRY = Web3.to_checksum_address("0x" + "cd" * 20)
CHAIN_ID = 31337


def report(rental_id: int, sequence: int) -> UsageReport:
    return UsageReport(rental_id=rental_id, sequence=sequence, period_end=1_800_000_000 + sequence,
                       available_gpu_seconds=60 * sequence, busy_gpu_seconds=50 * sequence,
                       energy_millijoules=36_000_000 * sequence, carbon_milligrams=1_500 * sequence, uptime_bps=9_900,
                       fault_flags=0, challenges_passed=sequence, challenges_failed=0,
                       telemetry_hash=bytes([sequence]) * 32, signer_set_version=1)


def packed(digest: bytes, keys: list[bytes]) -> bytes:
    by_signer = {Account.from_key(k).address.lower(): sign_digest(k, digest) for k in keys}
    return b"".join(by_signer[a] for a in sorted(by_signer))


@pytest.fixture(scope="module")
def w3() -> Web3:
    return Web3()


@pytest.fixture(scope="module")
def decoder(w3) -> CalldataDecoder:
    return CalldataDecoder(w3, CHAIN_ID, MARKET, load_abi("GpuRentMarket"), REGISTRY, load_abi("OperatorRegistry"))


def calldata(w3: Web3, abi_name: str, address: str, fn: str, *args) -> bytes:
    contract = w3.eth.contract(address=address, abi=load_abi(abi_name))
    return bytes.fromhex(contract.encode_abi(fn, args=list(args))[2:])


def signers_of(keys: list[bytes]) -> list[str]:
    return sorted((Account.from_key(k).address for k in keys), key=str.lower)


@pytest.mark.parametrize("target, abi_name, fn", [(MARKET, "GpuRentMarket", "settle"),
                                                  (REGISTRY, "OperatorRegistry", "settleFor")])
def test_a_single_report_and_its_signers_come_back_from_calldata(w3, decoder, target, abi_name, fn):
    r = report(4, 2)
    sigs = packed(usage_report_digest(r, CHAIN_ID, MARKET), KEYS[:2])
    out = decoder.decode(target, calldata(w3, abi_name, target, fn, usage_report_tuple(r), sigs), "0x" + "11" * 20)
    assert out["method"] == fn
    (got,) = out["reports"]
    assert (got["rentalId"], got["sequence"], got["energyMillijoules"]) == (4, 2, r.energy_millijoules)
    assert got["telemetryHash"] == "0x" + r.telemetry_hash.hex()
    assert got["signers"] == signers_of(KEYS[:2])


@pytest.mark.parametrize("target, abi_name, fn", [(MARKET, "GpuRentMarket", "settleBatch"),
                                                  (REGISTRY, "OperatorRegistry", "settleBatchFor")])
def test_a_batch_gives_every_report_with_the_batch_signers(w3, decoder, target, abi_name, fn):
    reports = [report(1, 3), report(2, 1), report(9, 7)]
    sigs = packed(usage_batch_digest(reports, CHAIN_ID, MARKET), KEYS[1:])
    data = calldata(w3, abi_name, target, fn, [usage_report_tuple(r) for r in reports], sigs)
    out = decoder.decode(target, data, "0x" + "11" * 20)
    assert [(r["rentalId"], r["sequence"]) for r in out["reports"]] == [(1, 3), (2, 1), (9, 7)]
    assert all(r["signers"] == signers_of(KEYS[1:]) for r in out["reports"])


def test_a_slash_gives_its_fault_report_evidence_and_signers(w3, decoder):
    fault = FaultReport(rental_id=5, fault_id=3, kind=2, observed_at=1_800_000_100, evidence_hash=b"\x5e" * 32,
                        signer_set_version=1)
    sigs = packed(fault_report_digest(fault, CHAIN_ID, MARKET), KEYS[:2])
    out = decoder.decode(MARKET, calldata(w3, "GpuRentMarket", MARKET, "slash", fault_report_tuple(fault), sigs),
                         "0x" + "11" * 20)
    assert out["fault"]["evidenceHash"] == "0x" + "5e" * 32 and out["fault"]["kind"] == 2
    assert out["fault"]["signers"] == signers_of(KEYS[:2])


def test_a_call_through_another_contract_yields_no_reports(w3, decoder):
    r = report(4, 2)
    data = calldata(w3, "GpuRentMarket", MARKET, "settle", usage_report_tuple(r), b"")
    out = decoder.decode(Web3.to_checksum_address("0x" + "ef" * 20), data, "0x" + "11" * 20)
    assert out["reports"] == [] and out["method"] is None
    assert decoder.decode(MARKET, b"\x01\x02", "0x" + "11" * 20)["reports"] == []


def test_a_signature_from_outside_the_digest_recovers_to_another_address(w3, decoder):
    r = report(4, 2)
    wrong = packed(usage_report_digest(report(4, 3), CHAIN_ID, MARKET), KEYS[:1])
    out = decoder.decode(MARKET, calldata(w3, "GpuRentMarket", MARKET, "settle", usage_report_tuple(r), wrong), "0x" + "11" * 20)
    assert out["reports"][0]["signers"] != signers_of(KEYS[:1])
