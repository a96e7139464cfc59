"""secp256k1 signing and recovery through coincurve, against eth_account."""

from __future__ import annotations

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle.attestation.signing import (
    SECP256K1_N,
    address_of,
    recover_signer,
    sign_digest,
)
from oracle.errors import SigningError

private_keys = st.integers(1, SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))
digests = st.binary(min_size=32, max_size=32)
KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")  # anvil #0
ANVIL_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
DIGEST = bytes(range(32))


@settings(max_examples=100, deadline=None)
@given(private_keys, digests)
def test_sign_digest_equals_eth_account_signature(key, digest):
    signature = sign_digest(key, digest)
    expected = Account.unsafe_sign_hash(digest, key)
    assert signature == bytes(expected.signature)
    assert signature[64] in (27, 28)
    assert int.from_bytes(signature[32:64], "big") <= SECP256K1_N // 2


@settings(max_examples=100, deadline=None)
@given(private_keys, digests)
def test_recover_signer_returns_the_signers_checksummed_address(key, digest):
    signature = sign_digest(key, digest)
    address = Account.from_key(key).address
    assert recover_signer(digest, signature) == address
    assert Account._recover_hash(digest, signature=signature) == address
    assert address_of(key) == address


def test_recover_signer_matches_the_anvil_dev_account():
    assert recover_signer(DIGEST, sign_digest(KEY, DIGEST)) == ANVIL_0


def test_recover_signer_rejects_a_high_s_signature():
    signature = sign_digest(KEY, DIGEST)
    s = int.from_bytes(signature[32:64], "big")
    malleated = signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes(
        [55 - signature[64]])  # flip v 27 <-> 28
    with pytest.raises(SigningError, match="high-s"):
        recover_signer(DIGEST, malleated)


@pytest.mark.parametrize("v", [0, 1, 26, 29, 255])
def test_recover_signer_rejects_a_bad_v(v):
    signature = sign_digest(KEY, DIGEST)
    with pytest.raises(SigningError, match="v must be"):
        recover_signer(DIGEST, signature[:64] + bytes([v]))


@pytest.mark.parametrize("mutate", [
    lambda sig: sig[:64],
    lambda sig: sig + b"\x00",
    lambda sig: b"\x00" * 32 + sig[32:],
    lambda sig: SECP256K1_N.to_bytes(32, "big") + sig[32:],
    lambda sig: sig[:32] + b"\x00" * 32 + sig[64:],
    lambda sig: "0x" + sig.hex(),
])
def test_recover_signer_rejects_malformed_signatures(mutate):
    with pytest.raises(SigningError):
        recover_signer(DIGEST, mutate(sign_digest(KEY, DIGEST)))


def test_recover_signer_of_another_digest_is_another_address():
    signature = sign_digest(KEY, DIGEST)
    other = bytes(31) + b"\x01"
    try:
        assert recover_signer(other, signature) != ANVIL_0
    except SigningError:
        pass  # no key recovers: also not the signer


@pytest.mark.parametrize("key", [b"\x00" * 32, SECP256K1_N.to_bytes(32, "big"), b"\x01" * 31,
                                 "0x" + "01" * 32])
def test_sign_digest_rejects_an_invalid_private_key(key):
    with pytest.raises(SigningError):
        sign_digest(key, DIGEST)


@pytest.mark.parametrize("digest", [b"", b"\x00" * 31, b"\x00" * 33, "00" * 32])
def test_sign_digest_rejects_a_digest_that_is_not_32_bytes(digest):
    with pytest.raises(SigningError, match="32 bytes"):
        sign_digest(KEY, digest)
