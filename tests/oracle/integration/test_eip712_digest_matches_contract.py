"""The Python EIP-712 digests (oracle.attestation.eip712) equal the deployed contract's.

The contract exposes ``usageReportDigest``, ``usageBatchDigest`` and ``faultReportDigest``
(views over ``_hashTypedDataV4``) and ERC-5267 ``eip712Domain()``; every case is compared by
``eth_call`` against a real deployment on anvil, and a node's signature over the Python digest
is accepted by the contract's own ``verifyQuorum``.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oracle.attestation.eip712 import (
    FaultReport,
    UsageReport,
    domain_separator,
    fault_report_digest,
    usage_batch_digest,
    usage_report_digest,
)
from oracle.attestation.signing import sign_digest
from oracle.chain.client import pack_signatures
from oracle.chain.errors import TransactionRevertedError

pytestmark = pytest.mark.integration

U = lambda bits: st.integers(min_value=0, max_value=2**bits - 1)  # noqa: E731

usage_reports = st.builds(
    UsageReport,
    rental_id=U(256), sequence=U(64), period_end=U(64), available_gpu_seconds=U(64),
    busy_gpu_seconds=U(64), energy_millijoules=U(128), carbon_milligrams=U(128),
    uptime_bps=st.integers(min_value=0, max_value=10_000), fault_flags=U(32),
    challenges_passed=U(32), challenges_failed=U(32), telemetry_hash=st.binary(min_size=32, max_size=32), signer_set_version=U(32),
)
fault_reports = st.builds(
    FaultReport,
    rental_id=U(256), fault_id=U(32), kind=U(8), observed_at=U(64),
    evidence_hash=st.binary(min_size=32, max_size=32), signer_set_version=U(32),
)

EXTREME = UsageReport(
    rental_id=2**256 - 1, sequence=2**64 - 1, period_end=2**64 - 1, available_gpu_seconds=2**64 - 1,
    busy_gpu_seconds=2**64 - 1, energy_millijoules=2**128 - 1, carbon_milligrams=2**128 - 1,
    uptime_bps=10_000, fault_flags=2**32 - 1, challenges_passed=2**32 - 1, challenges_failed=2**32 - 1,
    telemetry_hash=b"\xff" * 32, signer_set_version=2**32 - 1,
)
ZERO = UsageReport(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b"\0" * 32, 0)
REALISTIC = UsageReport(7, 42, 1_795_743_508, 3_600, 2_950, 1_512_345_678, 604_938, 9_990, 1 << 1, 12, 1,
                        bytes.fromhex("ab" * 32), 1)


@pytest.fixture(scope="module")
def market(deployed):
    return deployed.client(0)


def test_domain_matches_eip5267(market):
    domain = market.eip712_domain()
    assert domain == {"name": "gpurent", "version": "1", "chainId": market.chain_id,
                      "verifyingContract": market.address}
    # the separator the Python side uses is the one the contract's EIP712 derives
    assert len(domain_separator(market.chain_id, market.address)) == 32


@pytest.mark.parametrize("report", [ZERO, REALISTIC, EXTREME], ids=["zero", "realistic", "extreme"])
def test_usage_report_digest_matches(market, report):
    assert usage_report_digest(report, market.chain_id, market.address) == market.usage_report_digest(report)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(report=usage_reports)
def test_usage_report_digest_matches_random(market, report):
    assert usage_report_digest(report, market.chain_id, market.address) == market.usage_report_digest(report)


# A list of up to five full-width reports overruns hypothesis 6.27's example buffer now and then
# (data_too_large); that is about generation size, not about the property under test.
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])
@given(reports=st.lists(usage_reports, min_size=0, max_size=5))
def test_usage_batch_digest_matches_random(market, reports):
    assert usage_batch_digest(reports, market.chain_id, market.address) == market.usage_batch_digest(reports)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(report=fault_reports)
def test_fault_report_digest_matches_random(market, report):
    assert fault_report_digest(report, market.chain_id, market.address) == market.fault_report_digest(report)


def test_node_signatures_over_python_digest_pass_verify_quorum(market, deployed):
    digest = usage_report_digest(REALISTIC, market.chain_id, market.address)
    signatures = [sign_digest(key, digest) for key in deployed.node_keys[:2]]
    market.verify_quorum(digest, pack_signatures(digest, signatures))  # does not revert
    # one signature is below the 2-of-3 threshold
    with pytest.raises(TransactionRevertedError) as info:
        market.verify_quorum(digest, signatures[0])
    assert info.value.error_name == "OracleQuorum_NotEnoughSignatures"
    # descending order is refused: the contract wants strictly ascending signers
    packed = pack_signatures(digest, signatures)
    with pytest.raises(TransactionRevertedError) as info:
        market.verify_quorum(digest, packed[65:] + packed[:65])
    assert info.value.error_name == "OracleQuorum_SignerOrder"


def test_digest_binds_chain_and_contract(market):
    other_contract = "0x" + "12" * 20
    assert usage_report_digest(REALISTIC, market.chain_id, other_contract) != market.usage_report_digest(REALISTIC)
    assert usage_report_digest(REALISTIC, market.chain_id + 1, market.address) != market.usage_report_digest(REALISTIC)
