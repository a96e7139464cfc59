"""The renter's workload spec, its on-chain commitment, and its envelope to the provider.

- The spec is JSON (``WorkloadSpec``): image, command, environment, the renter's SSH public
  key and an optional preset (``shell``: a container that stays up for exec/ssh; ``jupyter``:
  JupyterLab on 127.0.0.1:8888 inside the container). It carries a random 32-byte ``salt`` so
  that its hash, which is public on chain, reveals nothing about a guessable spec.
- Canonical bytes: ``json.dumps(spec, sort_keys=True, separators=(",", ":"))`` in UTF-8.
- Commitment: ``workloadHash = keccak256(canonical bytes)``, passed to ``openRental``. The
  daemon runs a spec only if its canonical bytes hash to the rental's committed
  ``workloadHash`` (read from ``rentalTerms``), so the provider cannot run something else and
  claim otherwise, and the renter cannot later claim it asked for something else.
- Envelope: ECIES over secp256k1 (``eciespy``: ephemeral ECDH, HKDF-SHA256, AES-256-GCM) of
  the canonical bytes to the public key of the offer's agent address. The renter checks that
  the public key the daemon announces hashes to the offer's ``agent`` on chain before sealing.

Pure functions only (no I/O, no clock); ``new_salt`` is the one source of randomness.
"""

from __future__ import annotations

import json
import secrets
from typing import Literal

from eth_hash.auto import keccak
from eth_keys import keys as eth_keys
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from oracle.errors import ConfigError
from oracle.provider import ProviderError

MAX_SPEC_BYTES = 64 * 1024
# GPURENT_* is the daemon's; NVIDIA_* steers the NVIDIA container runtime (NVIDIA_VISIBLE_DEVICES=all
# would expose every GPU on the host), so a renter may set neither.
RESERVED_ENV_PREFIXES = ("GPURENT_", "NVIDIA_")
ZERO_HASH = b"\0" * 32

PRESET_COMMANDS: dict[str, list[str]] = {
    # A container that stays up so the renter can exec/ssh into it.
    "shell": ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"],
    "jupyter": ["jupyter", "lab", "--ip=127.0.0.1", "--port=8888", "--no-browser", "--allow-root"],
}


def new_salt() -> str:
    return "0x" + secrets.token_bytes(32).hex()


class WorkloadSpec(BaseModel):
    """What the renter asks the provider to run. ``cmd`` None means the image's own command
    (or the preset's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    image: str = Field(min_length=1, max_length=256)
    cmd: list[str] | None = Field(default=None, max_length=256)
    env: dict[str, str] = Field(default_factory=dict, max_length=256)
    ssh_public_key: str | None = Field(default=None, max_length=16_384)
    preset: Literal["none", "shell", "jupyter"] = "none"
    salt: str = Field(default_factory=new_salt, pattern=r"^0x[0-9a-f]{64}$")

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if not name or "=" in name or "\0" in name or name.startswith(RESERVED_ENV_PREFIXES):
                raise ValueError(f"invalid or reserved environment variable name {name!r}")
        return env

    @field_validator("ssh_public_key")
    @classmethod
    def _ssh_key(cls, key: str | None) -> str | None:
        if key is None:
            return None
        key = key.strip()
        if "\n" in key or not key.split(" ", 1)[0].startswith(("ssh-", "ecdsa-", "sk-")):
            raise ValueError("ssh_public_key must be one OpenSSH public key line (ssh-ed25519 AAAA...)")
        return key

    def command(self) -> list[str] | None:
        """The command the container runs: ``cmd``, else the preset's, else the image's (None)."""
        if self.cmd is not None:
            return list(self.cmd)
        return PRESET_COMMANDS.get(self.preset)

    def canonical_bytes(self) -> bytes:
        data = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()
        if len(data) > MAX_SPEC_BYTES:
            raise ConfigError(f"the workload spec is {len(data)} bytes; at most {MAX_SPEC_BYTES}")
        return data

    def workload_hash(self) -> bytes:
        return keccak(self.canonical_bytes())


def parse_spec(data: bytes) -> WorkloadSpec:
    """A spec from its canonical bytes; anything not canonical is refused (its hash would not
    be the one the renter committed to)."""
    if len(data) > MAX_SPEC_BYTES:
        raise ProviderError(f"workload spec too large ({len(data)} bytes)")
    try:
        spec = WorkloadSpec.model_validate_json(data)
    except ValidationError as exc:
        raise ProviderError(f"invalid workload spec: {exc.errors()[0]['msg']}") from None
    if spec.canonical_bytes() != data:
        raise ProviderError("workload spec is not in canonical form")
    return spec


# -- ECIES envelope ------------------------------------------------------------------------------

def public_key_of(private_key: bytes) -> bytes:
    """The 64-byte uncompressed secp256k1 public key (no 0x04 prefix) of an Ethereum key."""
    return eth_keys.PrivateKey(private_key).public_key.to_bytes()


def address_of_public_key(public_key: bytes) -> str:
    return eth_keys.PublicKey(bytes(public_key)).to_checksum_address()


def _ecies_config():
    """The envelope's parameters, stated rather than taken from eciespy's mutable global."""
    from ecies.config import Config

    return Config(elliptic_curve="secp256k1", is_ephemeral_key_compressed=False, is_hkdf_key_compressed=False,
                  symmetric_algorithm="aes-256-gcm", symmetric_nonce_length=16)


def seal(public_key: bytes, plaintext: bytes) -> bytes:
    """ECIES-encrypt ``plaintext`` to a 64-byte secp256k1 public key."""
    import ecies

    if len(public_key) != 64:
        raise ConfigError("the recipient's public key must be 64 bytes (uncompressed, no prefix)")
    return ecies.encrypt(b"\x04" + bytes(public_key), plaintext, _ecies_config())


def unseal(private_key: bytes, sealed: bytes) -> bytes:
    """Decrypt an ECIES envelope; a tampered or misaddressed one raises ``ProviderError``."""
    import ecies

    try:
        return ecies.decrypt(bytes(private_key), bytes(sealed), _ecies_config())
    except Exception as exc:  # eciespy raises ValueError / coincurve errors
        raise ProviderError(f"cannot open the sealed envelope: {type(exc).__name__}") from None


def seal_for_address(public_key: bytes, expected_address: str, plaintext: bytes) -> bytes:
    """Seal to ``public_key`` only if it is the key of ``expected_address`` (the offer's agent
    on chain): a daemon cannot make the renter encrypt to a key the offer does not name."""
    if address_of_public_key(public_key).lower() != expected_address.lower():
        raise ProviderError(
            f"the daemon's public key belongs to {address_of_public_key(public_key)}, not to the "
            f"offer's agent {expected_address}; refusing to send it the workload")
    return seal(public_key, plaintext)


def open_workload(private_key: bytes, sealed: bytes, committed_hash: bytes | None) -> WorkloadSpec:
    """Decrypt, parse and check a sealed spec against the rental's committed hash.

    ``committed_hash`` None means the market has no workload commitment (a pre-issue-10
    deployment): the caller decides whether that is acceptable (dev mode only).
    """
    spec = parse_spec(unseal(private_key, sealed))
    if committed_hash is not None:
        if bytes(committed_hash) == ZERO_HASH:
            raise ProviderError("the rental committed to no workload (workloadHash is zero)")
        if spec.workload_hash() != bytes(committed_hash):
            raise ProviderError(
                f"the workload's hash 0x{spec.workload_hash().hex()} is not the rental's committed "
                f"workloadHash 0x{bytes(committed_hash).hex()}")
    return spec
