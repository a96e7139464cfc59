"""IOracleQuorum: the versioned signer set and quorum verification, and the adversarial
signature cases (replay across chains and deployments, rotated-out sets, repeated signers,
malleated and zero-recovering signatures), each as its own test through `settle` so that the
money path itself is what refuses them."""

import brownie
import pytest
from brownie import chain
from eth_account import Account
from eth_utils import keccak

from conftest import BUDGET, THRESHOLD, deploy_market, open_rental
from market_testkit import (
    bad_v_signature,
    malleate,
    recover,
    reverts_with,
    sign_digest,
    zero_recovering_signature,
)

DIGEST = keccak(b"gpurent quorum test digest")
ZERO = "0x" + "00" * 20


def sigs(keys, digest=DIGEST):
    return b"".join(sign_digest(k, digest) for k in keys)


def addr(key):
    return Account.from_key(key).address


# ------------------------------------------------------------------ setSignerSet


def test_setSignerSet_installs_set_bumps_version_and_emits(market, gov, spare_oracle_keys):
    new = [addr(k) for k in spare_oracle_keys]
    tx = market.setSignerSet(new, 2, {"from": gov})
    version, threshold, signers = market.signerSet()
    assert (version, threshold, list(signers)) == (2, 2, new)
    ev = tx.events["SignerSetUpdated"]
    assert (ev["version"], list(ev["signers"]), ev["threshold"]) == (2, new, 2)


def test_setSignerSet_rotated_out_signers_stop_being_signers(market, gov, oracle_addresses, spare_oracle_keys):
    assert all(market.isSigner(a) for a in oracle_addresses)
    market.setSignerSet([addr(k) for k in spare_oracle_keys], 2, {"from": gov})
    assert not any(market.isSigner(a) for a in oracle_addresses)
    assert all(market.isSigner(addr(k)) for k in spare_oracle_keys)


def test_setSignerSet_accepts_31_signers(market, gov):
    keys = sorted((f"0x{i + 1:064x}" for i in range(31)), key=lambda k: int(addr(k), 16))
    market.setSignerSet([addr(k) for k in keys], 16, {"from": gov})
    market.verifyQuorum(DIGEST, sigs(keys[:16]))


def test_RevertWhen_setSignerSet_has_more_than_31_signers(market, gov):
    signers = sorted((addr(f"0x{i + 1:064x}") for i in range(32)), key=lambda a: int(a, 16))
    with reverts_with("OracleQuorum_InvalidSignerList(uint256)", 32):
        market.setSignerSet(signers, 3, {"from": gov})


def test_RevertWhen_setSignerSet_is_empty(market, gov):
    with reverts_with("OracleQuorum_InvalidSignerList(uint256)", 0):
        market.setSignerSet([], 1, {"from": gov})


def test_RevertWhen_setSignerSet_threshold_is_zero(market, gov, oracle_addresses):
    with reverts_with("OracleQuorum_InvalidThreshold(uint8,uint256)", 0, 5):
        market.setSignerSet(oracle_addresses, 0, {"from": gov})


def test_RevertWhen_setSignerSet_threshold_exceeds_signers(market, gov, oracle_addresses):
    with reverts_with("OracleQuorum_InvalidThreshold(uint8,uint256)", 6, 5):
        market.setSignerSet(oracle_addresses, 6, {"from": gov})


def test_RevertWhen_setSignerSet_contains_zero_address(market, gov, oracle_addresses):
    with reverts_with("OracleQuorum_ZeroSigner(uint256)", 0):
        market.setSignerSet([ZERO] + oracle_addresses[:2], 2, {"from": gov})


def test_RevertWhen_setSignerSet_repeats_a_signer(market, gov, oracle_addresses):
    a, b = oracle_addresses[:2]
    with reverts_with("OracleQuorum_SignersNotAscending(uint256,address,address)", 1, a, a):
        market.setSignerSet([a, a, b], 2, {"from": gov})


def test_RevertWhen_setSignerSet_is_not_ascending(market, gov, oracle_addresses):
    a, b = oracle_addresses[:2]
    with reverts_with("OracleQuorum_SignersNotAscending(uint256,address,address)", 1, b, a):
        market.setSignerSet([b, a], 2, {"from": gov})


# ------------------------------------------------------------------ verifyQuorum (view)


def test_verifyQuorum_accepts_threshold_of_distinct_ascending_signers(market, oracle_keys):
    market.verifyQuorum(DIGEST, sigs(oracle_keys[:THRESHOLD]))
    market.verifyQuorum(DIGEST, sigs([oracle_keys[0], oracle_keys[2], oracle_keys[4]]))


def test_verifyQuorum_accepts_more_than_threshold(market, oracle_keys):
    market.verifyQuorum(DIGEST, sigs(oracle_keys))


def test_RevertWhen_verifyQuorum_has_fewer_than_threshold(market, oracle_keys):
    with reverts_with("OracleQuorum_NotEnoughSignatures(uint256,uint8)", 130, THRESHOLD):
        market.verifyQuorum(DIGEST, sigs(oracle_keys[:2]))


def test_RevertWhen_verifyQuorum_length_is_not_a_multiple_of_65(market, oracle_keys):
    data = sigs(oracle_keys[:THRESHOLD]) + b"\x00"
    with reverts_with("OracleQuorum_NotEnoughSignatures(uint256,uint8)", 196, THRESHOLD):
        market.verifyQuorum(DIGEST, data)


def test_RevertWhen_verifyQuorum_signers_are_descending(market, oracle_keys):
    keys = [oracle_keys[0], oracle_keys[2], oracle_keys[1]]
    with reverts_with(
        "OracleQuorum_SignerOrder(uint256,address,address)", 2, addr(oracle_keys[2]), addr(oracle_keys[1])
    ):
        market.verifyQuorum(DIGEST, sigs(keys))


def test_RevertWhen_verifyQuorum_signer_is_unknown(market, oracle_keys, spare_oracle_keys):
    keys = sorted(oracle_keys[:2] + spare_oracle_keys[:1], key=lambda k: int(addr(k), 16))
    index = keys.index(spare_oracle_keys[0])
    with reverts_with("OracleQuorum_UnknownSigner(uint256,address)", index, addr(spare_oracle_keys[0])):
        market.verifyQuorum(DIGEST, sigs(keys))


def test_RevertWhen_verifyQuorum_before_any_signer_set(GpuRentMarket, admin, gov, treasury):
    fresh = _fresh_market_without_signers(GpuRentMarket, admin, gov, treasury)
    with reverts_with("OracleQuorum_NoSignerSet()"):
        fresh.verifyQuorum(DIGEST, b"")


def _fresh_market_without_signers(GpuRentMarket, admin, gov, treasury):
    return deploy_market(GpuRentMarket, admin, gov, treasury)


# ------------------------------------------------------------------ adversarial, through settle


@pytest.fixture
def report(oracle, rental_id):
    chain.sleep(100)
    chain.mine()
    return oracle.usage(rental_id, 1, 100)


def _settled_nothing(market, rental_id, provider, stablecoin, before):
    assert market.getRental(rental_id)["sequence"] == 0
    assert market.getRental(rental_id)["paid"] == 0
    assert market.withdrawable(provider, stablecoin) == before


def test_RevertWhen_settle_report_signed_for_another_chain_id(market, oracle, report, rental_id, provider, stablecoin, relayer):
    signatures = oracle.sign_usage(report, chain_id=chain.id + 1)
    keys = sorted(oracle.keys[:THRESHOLD], key=lambda k: int(addr(k), 16))
    # Under this chain's domain the first signature recovers to an unrelated address.
    stray = recover(oracle.usage_digest(report), signatures[:65])
    with reverts_with("OracleQuorum_UnknownSigner(uint256,address)", 0, stray):
        market.settle(report.as_tuple(), signatures, {"from": relayer})
    _settled_nothing(market, rental_id, provider, stablecoin, 0)
    assert keys  # the signatures were made by the real quorum, only for chain id + 1


def test_RevertWhen_settle_report_signed_for_another_deployment(
    GpuRentMarket, market, oracle, report, rental_id, provider, stablecoin, relayer, admin, gov, treasury, oracle_addresses
):
    # A second, real deployment with the same signer set and the same rental id space.
    other = deploy_market(GpuRentMarket, admin, gov, treasury, oracle_addresses)
    assert other.signerSet()[0] == market.signerSet()[0]
    signatures = oracle.sign_usage(report, contract=other.address)
    other.verifyQuorum(oracle.usage_digest(report, contract=other.address), signatures)  # valid there
    stray = recover(oracle.usage_digest(report), signatures[:65])
    with reverts_with("OracleQuorum_UnknownSigner(uint256,address)", 0, stray):
        market.settle(report.as_tuple(), signatures, {"from": relayer})
    _settled_nothing(market, rental_id, provider, stablecoin, 0)


def test_RevertWhen_settle_report_signed_by_rotated_out_set_for_old_version_after_overlap(
    market, oracle, report, rental_id, gov, spare_oracle_keys, relayer, provider, stablecoin
):
    signatures = oracle.sign_usage(report)  # version 1, valid before the rotation
    market.setSignerSet([addr(k) for k in spare_oracle_keys], 2, {"from": gov})
    overlap = market.signerSetRotation()[0]
    chain.sleep(overlap + 1)
    with reverts_with("OracleQuorum_WrongSignerSetVersion(uint32,uint32)", 1, 2):
        market.settle(report.as_tuple(), signatures, {"from": relayer})
    _settled_nothing(market, rental_id, provider, stablecoin, 0)


def test_settle_report_signed_by_the_previous_set_settles_within_the_overlap(
    market, oracle, report, rental_id, gov, spare_oracle_keys, relayer
):
    signatures = oracle.sign_usage(report)  # version 1, signed before the rotation
    market.setSignerSet([addr(k) for k in spare_oracle_keys], 2, {"from": gov})
    overlap, previous_threshold, previous_valid_until = (int(v) for v in market.signerSetRotation())
    assert (previous_threshold, previous_valid_until) == (THRESHOLD, chain[-1].timestamp + overlap)
    market.settle(report.as_tuple(), signatures, {"from": relayer})
    assert market.getRental(rental_id)["sequence"] == report.sequence


def test_RevertWhen_settle_report_signed_by_rotated_out_set_claiming_new_version(
    market, oracle, report, rental_id, gov, spare_oracle_keys, relayer, provider, stablecoin
):
    market.setSignerSet([addr(k) for k in spare_oracle_keys], 2, {"from": gov})
    forged = report.but(signerSetVersion=2)
    signatures = oracle.sign_usage(forged)  # old keys, new version number
    first = sorted(oracle.keys[:THRESHOLD], key=lambda k: int(addr(k), 16))[0]
    with reverts_with("OracleQuorum_UnknownSigner(uint256,address)", 0, addr(first)):
        market.settle(forged.as_tuple(), signatures, {"from": relayer})
    _settled_nothing(market, rental_id, provider, stablecoin, 0)


def test_settle_after_rotation_accepts_new_set(market, oracle, report, gov, spare_oracle_keys, relayer):
    market.setSignerSet([addr(k) for k in spare_oracle_keys], 2, {"from": gov})
    fresh = report.but(signerSetVersion=2)
    market.settle(fresh.as_tuple(), oracle.sign_usage(fresh, keys=spare_oracle_keys[:2]), {"from": relayer})
    assert market.getRental(report.rentalId)["sequence"] == 1


def test_RevertWhen_settle_quorum_filled_by_one_signer_repeated(market, oracle, report, relayer, rental_id, provider, stablecoin):
    a, b = sorted(oracle.keys[:2], key=lambda k: int(addr(k), 16))
    digest = oracle.usage_digest(report)
    signatures = sign_digest(a, digest) + sign_digest(a, digest) + sign_digest(b, digest)  # [A, A, B]
    with reverts_with("OracleQuorum_SignerOrder(uint256,address,address)", 1, addr(a), addr(a)):
        market.settle(report.as_tuple(), signatures, {"from": relayer})
    _settled_nothing(market, rental_id, provider, stablecoin, 0)


def test_RevertWhen_settle_quorum_repeats_signer_out_of_order(market, oracle, report, relayer):
    a, b = sorted(oracle.keys[:2], key=lambda k: int(addr(k), 16))
    digest = oracle.usage_digest(report)
    signatures = sign_digest(a, digest) + sign_digest(b, digest) + sign_digest(a, digest)  # [A, B, A]
    with reverts_with("OracleQuorum_SignerOrder(uint256,address,address)", 2, addr(b), addr(a)):
        market.settle(report.as_tuple(), signatures, {"from": relayer})


def test_RevertWhen_settle_signature_is_malleated(market, oracle, report, relayer, rental_id, provider, stablecoin):
    signatures = oracle.sign_usage(report)
    # Replace the second signature by its (r, n - s, v ^ 1) twin: same signer for raw ecrecover.
    twin = malleate(signatures[65:130])
    assert recover(oracle.usage_digest(report), twin) == recover(oracle.usage_digest(report), signatures[65:130])
    tampered = signatures[:65] + twin + signatures[130:]
    with reverts_with("OracleQuorum_InvalidSignature(uint256)", 1):
        market.settle(report.as_tuple(), tampered, {"from": relayer})
    _settled_nothing(market, rental_id, provider, stablecoin, 0)


def test_RevertWhen_settle_signature_recovers_to_zero_address(market, oracle, report, relayer, rental_id, provider, stablecoin):
    signatures = zero_recovering_signature(oracle.usage_digest(report)) + oracle.sign_usage(report)[65:]
    with reverts_with("OracleQuorum_InvalidSignature(uint256)", 0):
        market.settle(report.as_tuple(), signatures, {"from": relayer})
    _settled_nothing(market, rental_id, provider, stablecoin, 0)


def test_RevertWhen_settle_signature_has_invalid_v(market, oracle, report, relayer):
    signatures = oracle.sign_usage(report)
    tampered = signatures[:130] + bad_v_signature(signatures[130:], v=1)
    with reverts_with("OracleQuorum_InvalidSignature(uint256)", 2):
        market.settle(report.as_tuple(), tampered, {"from": relayer})


def test_RevertWhen_settle_report_field_changed_after_signing(market, oracle, report, relayer):
    signatures = oracle.sign_usage(report)
    inflated = report.but(availableGpuSeconds=report.availableGpuSeconds * 10)
    first = recover(oracle.usage_digest(inflated), signatures[:65])
    with reverts_with("OracleQuorum_UnknownSigner(uint256,address)", 0, first):
        market.settle(inflated.as_tuple(), signatures, {"from": relayer})


def test_RevertWhen_settle_signed_by_non_signers_only(market, oracle, report, relayer, spare_oracle_keys):
    signatures = oracle.sign_usage(report, keys=spare_oracle_keys)
    first = sorted(spare_oracle_keys, key=lambda k: int(addr(k), 16))[0]
    with reverts_with("OracleQuorum_UnknownSigner(uint256,address)", 0, addr(first)):
        market.settle(report.as_tuple(), signatures, {"from": relayer})


def test_RevertWhen_settle_has_no_signatures(market, oracle, report, relayer):
    with reverts_with("OracleQuorum_NotEnoughSignatures(uint256,uint8)", 0, THRESHOLD):
        market.settle(report.as_tuple(), b"", {"from": relayer})


# ------------------------------------------------------------------ governance gate


def test_RevertWhen_setSignerSet_called_by_stranger(market, stranger, oracle_addresses):
    with reverts_with("AccessControlUnauthorizedAccount(address,bytes32)", stranger.address, market.GOVERNANCE_ROLE()):
        market.setSignerSet(oracle_addresses, 1, {"from": stranger})


def test_setSignerSet_signer_kept_across_rotation_still_counts(market, gov, oracle_keys, spare_oracle_keys):
    keep = oracle_keys[:2]
    keys = sorted(keep + spare_oracle_keys[:1], key=lambda k: int(addr(k), 16))
    market.setSignerSet([addr(k) for k in keys], 3, {"from": gov})
    market.verifyQuorum(DIGEST, sigs(keys))
    assert market.isSigner(addr(keep[0])) and not market.isSigner(addr(oracle_keys[2]))


def test_setSignerSet_signer_removed_then_readded_counts_again(market, gov, oracle_keys, oracle_addresses, spare_oracle_keys):
    market.setSignerSet([addr(k) for k in spare_oracle_keys], 2, {"from": gov})
    market.setSignerSet(oracle_addresses, 3, {"from": gov})
    assert market.signerSet()[0] == 3
    market.verifyQuorum(DIGEST, sigs(oracle_keys[:3]))
    assert not market.isSigner(addr(spare_oracle_keys[0]))


def test_RevertWhen_settle_after_chain_id_changes_under_the_contract(market, oracle, report, relayer, rental_id):
    """Adversarial, replay across a chain split: the same deployment, same state, but the chain
    id changes (a fork). A quorum signed for the old chain id no longer settles; the domain
    separator follows block.chainid, so a quorum for the new id does."""
    from brownie import accounts, web3

    old_id = chain.id
    signatures = oracle.sign_usage(report, chain_id=old_id)
    # anvil's unlocked accounts keep signing for the old id; submit from a locally signing key
    relayer = accounts.add(f"0x{0xF0F0:064x}")
    accounts[0].transfer(relayer, 10**18)
    web3.provider.make_request("anvil_setChainId", [old_id + 1000])
    try:
        assert web3.eth.chain_id == old_id + 1000
        stray = recover(oracle.usage_digest(report, chain_id=old_id + 1000), signatures[:65])
        with reverts_with("OracleQuorum_UnknownSigner(uint256,address)", 0, stray):
            market.settle(report.as_tuple(), signatures, {"from": relayer})
        market.settle(report.as_tuple(), oracle.sign_usage(report, chain_id=old_id + 1000), {"from": relayer})
        assert market.getRental(rental_id)["sequence"] == 1
    finally:
        web3.provider.make_request("anvil_setChainId", [old_id])
    assert web3.eth.chain_id == old_id


def test_RevertWhen_verifyQuorum_extra_signature_beyond_threshold_is_invalid(market, oracle_keys):
    """Every signature supplied must be valid, not just the first `threshold` of them."""
    from market_testkit import malleate

    good = sigs(oracle_keys[:4])
    tampered = good[:195] + malleate(good[195:260])
    with reverts_with("OracleQuorum_InvalidSignature(uint256)", 3):
        market.verifyQuorum(DIGEST, tampered)


def test_RevertWhen_verifyQuorum_extra_signer_is_unknown(market, oracle_keys, spare_oracle_keys):
    keys = sorted(oracle_keys[:3] + spare_oracle_keys[:1], key=lambda k: int(addr(k), 16))
    index = keys.index(spare_oracle_keys[0])
    with reverts_with("OracleQuorum_UnknownSigner(uint256,address)", index, addr(spare_oracle_keys[0])):
        market.verifyQuorum(DIGEST, sigs(keys))
