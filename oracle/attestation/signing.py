"""secp256k1 signatures over 32-byte digests through coincurve (libsecp256k1), never the
pure-Python backend. Signatures are 65 bytes ``r || s || v`` with ``v`` in {27, 28} and low
``s``, the form OpenZeppelin's ``ECDSA.recover`` accepts."""

from __future__ import annotations

from coincurve import PrivateKey, PublicKey
from oracle.errors import SigningError
from oracle.telemetry.batches import keccak, to_checksum_address

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2


def _digest(digest: bytes) -> bytes:
    if not isinstance(digest, (bytes, bytearray)) or len(digest) != 32:
        raise SigningError(f"digest must be 32 bytes, got {digest!r}")
    return bytes(digest)


def sign_digest(private_key: bytes, digest: bytes) -> bytes:
    """Sign a 32-byte digest as is (no hashing): 65 bytes r, s, v with v in {27, 28}."""
    digest = _digest(digest)
    if not isinstance(private_key, (bytes, bytearray)) or len(private_key) != 32:
        raise SigningError("private key must be 32 bytes")
    try:
        signature = PrivateKey(bytes(private_key)).sign_recoverable(digest, hasher=None)
    except ValueError as exc:
        raise SigningError(f"invalid private key: {exc}") from None
    # libsecp256k1 always produces low-s; recovery id 0/1 becomes v 27/28.
    return signature[:64] + bytes([signature[64] + 27])


def recover_signer(digest: bytes, signature: bytes) -> str:
    """The checksummed address that signed ``digest``; rejects high-s, bad v, bad r/s."""
    digest = _digest(digest)
    if not isinstance(signature, (bytes, bytearray)) or len(signature) != 65:
        raise SigningError("signature must be 65 bytes (r, s, v)")
    r = int.from_bytes(signature[0:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v not in (27, 28):
        raise SigningError(f"signature v must be 27 or 28, got {v}")
    if not 0 < r < SECP256K1_N:
        raise SigningError("signature r out of range")
    if not 0 < s <= SECP256K1_HALF_N:
        raise SigningError("signature s out of range (high-s signatures are malleable)")
    try:
        public_key = PublicKey.from_signature_and_message(
            bytes(signature[:64]) + bytes([v - 27]), digest, hasher=None
        )
    except Exception as exc:  # coincurve raises plain Exception when no key recovers
        raise SigningError(f"signature does not recover to a public key: {exc}") from None
    return public_key_to_address(public_key.format(compressed=False))


def public_key_to_address(uncompressed: bytes) -> str:
    """Checksummed address of a 65-byte uncompressed public key (0x04 || x || y)."""
    if len(uncompressed) != 65 or uncompressed[0] != 4:
        raise SigningError("expected a 65-byte uncompressed public key")
    return to_checksum_address(keccak(uncompressed[1:])[-20:])


def address_of(private_key: bytes) -> str:
    """Checksummed address of a 32-byte private key."""
    try:
        key = PrivateKey(bytes(private_key))
    except (TypeError, ValueError) as exc:
        raise SigningError(f"invalid private key: {exc}") from None
    return public_key_to_address(key.public_key.format(compressed=False))


__all__ = ["address_of", "public_key_to_address", "recover_signer", "sign_digest"]
