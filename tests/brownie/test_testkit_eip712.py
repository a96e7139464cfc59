"""The test kit's EIP-712 digests (eth_account encode_typed_data) agree with a digest computed
straight from the EIP-712 definition and the exact type strings in docs/protocol.md, and its
signature helpers produce what the adversarial tests claim they produce."""

import pytest
from eth_account import Account
from market_testkit import (
    SECP256K1_HALF_N,
    FaultReport,
    UsageReport,
    fault_report_digest,
    malleate,
    manual_fault_report_digest,
    manual_usage_batch_digest,
    manual_usage_report_digest,
    recover,
    sign_digest,
    split_sig,
    usage_batch_digest,
    usage_report_digest,
)

CONTRACT = "0x" + "ab" * 20
REPORT = UsageReport(7, 3, 1_700_000_000, 3600, 1800, 123_456_789, 42, 9_999, 2, 4, 1, b"\x33" * 32, 1)


@pytest.mark.parametrize("chain_id", [1, 31337, 11155111])
def test_usage_report_digest_matches_eip712_definition(chain_id):
    assert usage_report_digest(REPORT, chain_id, CONTRACT) == manual_usage_report_digest(
        REPORT, chain_id, CONTRACT
    )


@pytest.mark.parametrize("n", [0, 1, 3])
def test_usage_batch_digest_matches_eip712_definition(n):
    reports = [REPORT.but(rentalId=REPORT.rentalId + i, sequence=i + 1) for i in range(n)]
    assert usage_batch_digest(reports, 31337, CONTRACT) == manual_usage_batch_digest(
        reports, 31337, CONTRACT
    )


def test_fault_report_digest_matches_eip712_definition():
    report = FaultReport(7, 2, 1, 1_700_000_000, b"\x44" * 32, 3)
    assert fault_report_digest(report, 31337, CONTRACT) == manual_fault_report_digest(
        report, 31337, CONTRACT
    )


def test_digest_binds_chain_id_and_contract():
    base = usage_report_digest(REPORT, 31337, CONTRACT)
    assert usage_report_digest(REPORT, 1, CONTRACT) != base
    assert usage_report_digest(REPORT, 31337, "0x" + "cd" * 20) != base
    assert usage_report_digest(REPORT.but(signerSetVersion=2), 31337, CONTRACT) != base


def test_sign_digest_is_low_s_and_malleate_recovers_same_signer(oracle_keys):
    digest = usage_report_digest(REPORT, 31337, CONTRACT)
    sig = sign_digest(oracle_keys[0], digest)
    _, s, v = split_sig(sig)
    assert s <= SECP256K1_HALF_N and v in (27, 28)
    signer = Account.from_key(oracle_keys[0]).address
    assert recover(digest, sig) == signer
    high = malleate(sig)
    assert split_sig(high)[1] > SECP256K1_HALF_N
    assert recover(digest, high) == signer  # raw ecrecover accepts it: the contract must not
