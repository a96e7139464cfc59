"""Agent keys and EIP-191 signatures over 32-byte batch hashes, through coincurve (libsecp256k1);
keccak256 and EIP-55 addresses. The telemetry wire format (:mod:`oracle.telemetry.batches`) and the
node's peer requests sign and recover with these."""

from __future__ import annotations

from coincurve import PrivateKey, PublicKey

from oracle.errors import BatchVerificationError

try:  # safe-pysha3 (pinned in requirements.lock): ~1 us per hash, 8x eth_hash's auto backend
    from sha3 import keccak_256 as _keccak_256

    def keccak(data: bytes) -> bytes:
        return _keccak_256(data).digest()

except ImportError:  # pragma: no cover - the same bytes, only slower
    from eth_hash.auto import keccak

_EIP191_PREFIX_32 = b"\x19Ethereum Signed Message:\n32"
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = _SECP256K1_N // 2


def to_checksum_address(address: str | bytes) -> str:
    """EIP-55 spelling of a 20-byte address (bytes or hex text); ~5x eth_utils' speed."""
    hex_address = address.hex() if isinstance(address, bytes) else address.lower().removeprefix("0x")
    if len(hex_address) != 40:
        raise BatchVerificationError(f"an address is 20 bytes, got {address!r}")
    digest = keccak(hex_address.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if c > "9" and digest[i] > "7" else c for i, c in enumerate(hex_address)
    )


def eip191_digest(batch_hash: bytes) -> bytes:
    """The digest an EIP-191 ``personal_sign`` of the 32-byte ``batch_hash`` signs."""
    return keccak(_EIP191_PREFIX_32 + batch_hash)


def sign_batch_hash(private_key: bytes, batch_hash: bytes) -> bytes:
    """65-byte ``r || s || v`` (v in {27, 28}, low s) EIP-191 signature of ``batch_hash``."""
    if len(private_key) != 32:
        raise BatchVerificationError("an agent private key is 32 bytes")
    raw = PrivateKey(private_key).sign_recoverable(eip191_digest(batch_hash), hasher=None)
    return raw[:64] + bytes([raw[64] + 27])


def recover_batch_signer(batch_hash: bytes, signature: bytes) -> str:
    """Checksummed address that made ``signature`` over ``batch_hash`` (EIP-191)."""
    if len(signature) != 65:
        raise BatchVerificationError(f"signature is {len(signature)} bytes, expected 65")
    v = signature[64]
    if v not in (27, 28):
        raise BatchVerificationError(f"signature v is {v}, expected 27 or 28")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if not (0 < r < _SECP256K1_N and 0 < s <= _HALF_N):
        raise BatchVerificationError("signature r or s out of range (s must be in the lower half)")
    try:
        public = PublicKey.from_signature_and_message(
            signature[:64] + bytes([v - 27]), eip191_digest(batch_hash), hasher=None
        )
    except Exception as exc:  # coincurve raises plain Exception/ValueError on unrecoverable input
        raise BatchVerificationError(f"signature does not recover to a key: {exc}") from exc
    return to_checksum_address(keccak(public.format(compressed=False)[1:])[-20:])


def address_of(private_key: bytes) -> str:
    """Checksummed Ethereum address of a 32-byte secp256k1 private key."""
    public = PrivateKey(private_key).public_key.format(compressed=False)[1:]
    return to_checksum_address(keccak(public)[-20:])
