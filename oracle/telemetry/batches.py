"""Wire telemetry batches: canonical JSON, the hash chain, and the agent's EIP-191 signature.

The bytes are fixed by ``docs/protocol.md`` ("Telemetry batches"):

- ``batch_hash = keccak256(canonical_json(batch without "signature"))``;
- ``signature`` is the agent key's EIP-191 signature of ``batch_hash``
  (``encode_defunct(primitive=batch_hash)``), 65 bytes ``r || s || v`` with ``v`` in {27, 28};
- samples are ordered by ``(t_ms, gpu)``; batch 0 of a rental has ``prev_hash`` = 32 zero bytes;
- a sample's ``foreign_process_count`` is on the wire only when it is not 0 (issue 10);
- the signed body names its domain: ``chain_id`` and ``market`` (the GpuRentMarket address,
  EIP-55), so a batch for rental 1 of one deployment means nothing to another deployment's nodes.

Signing and recovery go through coincurve (libsecp256k1): a node recovers thousands of batch
signatures a second, and the pure-Python backend is two orders of magnitude slower. The recovered
address is the one ``eth_account.Account.recover_message`` gives (a test proves it).

``from_wire`` is strict so that the node can hash what it parsed and get the agent's bytes back:
every field present and no other, integers only (``bool`` and ``float`` refused), values in range,
hex in the one canonical spelling (``0x`` + lowercase), the agent as an EIP-55 checksummed
address, GPUs ordered by index, samples ordered by ``(t_ms, gpu)`` without duplicates and only
for GPUs listed in ``gpus``.
"""

from __future__ import annotations

import json
import re
from collections import abc
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from coincurve import PrivateKey, PublicKey

try:  # safe-pysha3 (pinned in requirements.lock): ~1 us per hash, 8x eth_hash's auto backend
    from sha3 import keccak_256 as _keccak_256

    def keccak(data: bytes) -> bytes:
        return _keccak_256(data).digest()

except ImportError:  # pragma: no cover - the same bytes, only slower
    from eth_hash.auto import keccak

from oracle.errors import BatchVerificationError
from oracle.telemetry.samples import REQUIRED_SAMPLE_FIELDS, SAMPLE_FIELDS, GpuInfo, Sample

GENESIS_PREV_HASH = bytes(32)
"""``prev_hash`` of batch 0 of every rental."""

# Ranges enforced by ``from_wire`` (inclusive). Physics (power above the board limit, a counter
# that runs backwards) is the metering core's business; these only keep the wire sane.
UINT64_MAX = 2**64 - 1
UINT256_MAX = 2**256 - 1
MAX_GPUS_PER_BATCH = 64
MAX_SAMPLES_PER_BATCH = 4096
MAX_TEXT_CHARS = 128
MIN_SAMPLE_INTERVAL_MS = 20
"""Two samples of one GPU are at least this far apart (50 Hz; the agent samples at 10 Hz at most):
the agent drops a sample that comes sooner, a node refuses a batch that carries one, so stored
telemetry is bounded by GPU time and cannot be padded with samples."""
SAMPLE_RANGES: dict[str, tuple[int, int]] = {
    "gpu": (0, MAX_GPUS_PER_BATCH * 4 - 1),
    "t_ms": (0, 2**63 - 1),
    "energy_mj": (0, 2**63 - 1),
    "power_mw": (0, 10_000_000),  # 10 kW: no single accelerator board draws more
    "util_gpu_pct": (0, 100),
    "util_mem_pct": (0, 100),
    "mem_used_mib": (0, 2**24),  # 16 TiB
    "temp_c": (0, 200),
    "foreign_process_count": (0, 1024),  # on the wire only when >= 1 (see Sample)
}
POWER_LIMIT_RANGE_MW = (1, 10_000_000)

_EIP191_PREFIX_32 = b"\x19Ethereum Signed Message:\n32"
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = _SECP256K1_N // 2
_HEX32 = re.compile(r"0x[0-9a-f]{64}\Z")
_HEX65 = re.compile(r"0x[0-9a-f]{130}\Z")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}\Z")
_WIRE_FIELDS = frozenset(
    {"chain_id", "market", "rental_id", "agent", "batch_seq", "prev_hash", "gpus", "samples",
     "signature"}
)
_GPU_FIELDS = ("index", "uuid", "name", "power_limit_mw")
_SAMPLE_FIELD_SET = frozenset(REQUIRED_SAMPLE_FIELDS)
_FOREIGN_SAMPLE_FIELD_SET = frozenset(SAMPLE_FIELDS)
_GPU_FIELD_SET = frozenset(_GPU_FIELDS)


def canonical_json(obj: Any) -> bytes:
    """The protocol's canonical JSON: sorted keys, no whitespace, ASCII only.

    Floats are refused anywhere in ``obj`` (signed telemetry holds integers and strings only).
    """
    _refuse_floats(obj)
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def _refuse_floats(obj: Any) -> None:
    if isinstance(obj, float):
        raise BatchVerificationError(f"float {obj!r} in canonical JSON; only integers are allowed")
    if isinstance(obj, dict):
        for value in obj.values():
            _refuse_floats(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _refuse_floats(value)


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


_SAMPLE_JSON = (
    '{"energy_mj":%d,"gpu":%d,"mem_used_mib":%d,"power_mw":%d,"t_ms":%d,"temp_c":%d,'
    '"util_gpu_pct":%d,"util_mem_pct":%d}'
)
_FOREIGN_JSON = '"energy_mj":%d,"foreign_process_count":%d,'  # replaces '"energy_mj":%d,' when used
_GPU_JSON = '{"index":%d,"name":%s,"power_limit_mw":%d,"uuid":%s}'
_BATCH_JSON = (
    '{"agent":%s,"batch_seq":%d,"chain_id":%d,"gpus":[%s],"market":%s,"prev_hash":"0x%s",'
    '"rental_id":%d,"samples":[%s]}'
)
_json_str = json.JSONEncoder(ensure_ascii=True).encode  # a str -> its canonical JSON literal


def _foreign_sample_json(s: Sample) -> str:
    """A sample with foreign GPU use: its key sorts between energy_mj and gpu."""
    rest = _SAMPLE_JSON[len('{"energy_mj":%d,'):] % (s.gpu, s.mem_used_mib, s.power_mw, s.t_ms, s.temp_c,
                                                     s.util_gpu_pct, s.util_mem_pct)
    return "{" + _FOREIGN_JSON % (s.energy_mj, s.foreign_process_count) + rest


@dataclass(frozen=True)
class TelemetryBatch:
    """One signed, hash-chained batch of samples for one rental, as it travels on the wire.

    ``prev_hash`` and ``signature`` are bytes here and ``0x``-hex on the wire. ``signature`` is
    ``None`` until :meth:`signed` is called. The constructor checks types (integers are ``int``,
    never ``bool`` or ``float``; text is ``str``; hashes are bytes of the right length) because the
    canonical bytes depend on them; ranges and sample order are checked by ``from_wire`` only, so
    tests can build batches a node must refuse. The agent sorts samples by ``(t_ms, gpu)``.
    """

    rental_id: int
    agent: str
    batch_seq: int
    prev_hash: bytes
    gpus: tuple[GpuInfo, ...]
    samples: tuple[Sample, ...]
    signature: bytes | None = None
    #: The deployment the batch is for (signed): the market's chain id and EIP-55 address.
    chain_id: int = field(kw_only=True)
    market: str = field(kw_only=True)
    _hash_cache: list = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.rental_id) is not int or type(self.batch_seq) is not int:
            raise BatchVerificationError("rental_id and batch_seq must be int")
        if type(self.chain_id) is not int or type(self.market) is not str:
            raise BatchVerificationError("chain_id must be int and market a str address")
        if type(self.agent) is not str:
            raise BatchVerificationError("agent must be a str address")
        if type(self.prev_hash) is not bytes or len(self.prev_hash) != 32:
            raise BatchVerificationError("prev_hash must be 32 bytes")
        if self.signature is not None and (
            type(self.signature) is not bytes or len(self.signature) != 65
        ):
            raise BatchVerificationError("signature must be 65 bytes")
        if type(self.gpus) is not tuple:
            object.__setattr__(self, "gpus", tuple(self.gpus))
        if type(self.samples) is not tuple:
            object.__setattr__(self, "samples", tuple(self.samples))
        for g in self.gpus:
            if type(g) is not GpuInfo or type(g.index) is not int or type(
                g.power_limit_mw) is not int or type(g.uuid) is not str or type(g.name) is not str:
                raise BatchVerificationError(f"not a well-typed GpuInfo: {g!r}")
        for s in self.samples:
            if type(s) is not Sample or not all(
                type(getattr(s, name)) is int for name in SAMPLE_FIELDS
            ):
                raise BatchVerificationError(f"not a Sample of integers: {s!r}")

    @classmethod
    def _from_checked(cls, rental_id: int, agent: str, batch_seq: int, prev_hash: bytes,
                      gpus: tuple[GpuInfo, ...], samples: tuple[Sample, ...],
                      signature: bytes | None, chain_id: int, market: str) -> TelemetryBatch:
        """Build from values ``from_wire`` has already validated (skips ``__post_init__``)."""
        self = object.__new__(cls)
        for name, value in (("rental_id", rental_id), ("agent", agent), ("batch_seq", batch_seq),
                            ("prev_hash", prev_hash), ("gpus", gpus), ("samples", samples),
                            ("signature", signature), ("chain_id", chain_id), ("market", market),
                            ("_hash_cache", [])):
            object.__setattr__(self, name, value)
        return self

    # -- hashing -------------------------------------------------------------------------------

    def unsigned_wire(self) -> dict[str, Any]:
        """The batch as a wire dict without ``signature``: what ``batch_hash`` covers."""
        return {
            "chain_id": self.chain_id,
            "market": self.market,
            "rental_id": self.rental_id,
            "agent": self.agent,
            "batch_seq": self.batch_seq,
            "prev_hash": "0x" + self.prev_hash.hex(),
            "gpus": [
                {
                    "index": g.index,
                    "uuid": g.uuid,
                    "name": g.name,
                    "power_limit_mw": g.power_limit_mw,
                }
                for g in self.gpus
            ],
            "samples": [s.to_wire() for s in self.samples],
        }

    def canonical_bytes(self) -> bytes:
        """``canonical_json`` of the batch without ``signature``.

        Built directly from fixed, pre-sorted templates (3x faster than ``json.dumps`` with
        ``sort_keys``); a property test proves the bytes equal ``canonical_json(unsigned_wire())``.
        Exact because every number is an ``int`` (checked on construction) and every string
        goes through the JSON encoder with ``ensure_ascii``.
        """
        gpus = ",".join(
            [_GPU_JSON % (g.index, _json_str(g.name), g.power_limit_mw, _json_str(g.uuid))
             for g in self.gpus]
        )
        samples = ",".join(
            [_SAMPLE_JSON % (s.energy_mj, s.gpu, s.mem_used_mib, s.power_mw, s.t_ms, s.temp_c,
                             s.util_gpu_pct, s.util_mem_pct) if not s.foreign_process_count
             else _foreign_sample_json(s) for s in self.samples]
        )
        return (
            _BATCH_JSON % (_json_str(self.agent), self.batch_seq, self.chain_id, gpus,
                           _json_str(self.market), self.prev_hash.hex(), self.rental_id, samples)
        ).encode("ascii")

    def batch_hash(self) -> bytes:
        """keccak256 of :meth:`canonical_bytes`; cached (the batch is immutable)."""
        if not self._hash_cache:
            self._hash_cache.append(keccak(self.canonical_bytes()))
        return self._hash_cache[0]

    # -- signatures ----------------------------------------------------------------------------

    def signed(self, private_key: bytes) -> TelemetryBatch:
        """A copy carrying the agent key's signature of :meth:`batch_hash`.

        The key must belong to ``agent``: a batch signed by any other key would never verify.
        """
        if address_of(private_key) != self.agent:
            raise BatchVerificationError(
                f"private key does not belong to the batch's agent {self.agent}"
            )
        batch_hash = self.batch_hash()
        copy = TelemetryBatch._from_checked(
            self.rental_id, self.agent, self.batch_seq, self.prev_hash, self.gpus, self.samples,
            sign_batch_hash(private_key, batch_hash), self.chain_id, self.market,
        )
        copy._hash_cache.append(batch_hash)
        return copy

    def recover_agent(self) -> str:
        """The checksummed address that signed this batch (not compared with ``agent``)."""
        if self.signature is None:
            raise BatchVerificationError("batch is not signed")
        return recover_batch_signer(self.batch_hash(), self.signature)

    def verify_signature(self, expected_agent: str | None = None) -> None:
        """Raise ``BatchVerificationError`` unless the signature recovers to ``agent``.

        With ``expected_agent`` (the offer's registered agent key) that must match too.
        """
        recovered = self.recover_agent()
        if recovered != self.agent:
            raise BatchVerificationError(
                f"batch signed by {recovered}, but its agent field says {self.agent}"
            )
        if expected_agent is not None and recovered.lower() != expected_agent.lower():
            raise BatchVerificationError(
                f"batch signed by {recovered}, but the rental's agent is {expected_agent}"
            )

    # -- wire ----------------------------------------------------------------------------------

    def to_wire(self) -> dict[str, Any]:
        """The JSON object of ``POST /v1/rentals/{rental_id}/batches`` (requires a signed batch)."""
        if self.signature is None:
            raise BatchVerificationError("an unsigned batch has no wire form; call signed() first")
        wire = self.unsigned_wire()
        wire["signature"] = "0x" + self.signature.hex()
        return wire

    def to_wire_bytes(self) -> bytes:
        """``to_wire()`` serialised as canonical JSON (the body the agent POSTs)."""
        if self.signature is None:
            raise BatchVerificationError("an unsigned batch has no wire form; call signed() first")
        # "signature" sorts last: the unsigned canonical object with one more member.
        return self.canonical_bytes()[:-1] + b',"signature":"0x' + self.signature.hex().encode(
            "ascii") + b'"}'

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> TelemetryBatch:
        """Parse and validate a wire batch; raise ``BatchVerificationError`` on any defect.

        Checks shape and ranges only. The signature's recovery, the rental's registered agent,
        the sequence, the hash chain and freshness are checked by the caller
        (:meth:`verify_signature`, then the node's chain state).
        """
        if type(wire) is not dict and not isinstance(wire, abc.Mapping):
            raise BatchVerificationError("a batch is a JSON object")
        if wire.keys() != _WIRE_FIELDS:
            _refuse_fields("batch", set(wire), _WIRE_FIELDS)
        chain_id = _int(wire["chain_id"], "chain_id", 1, UINT256_MAX)
        market = _checksummed(wire["market"], "market")
        rental_id = _int(wire["rental_id"], "rental_id", 0, UINT256_MAX)
        batch_seq = _int(wire["batch_seq"], "batch_seq", 0, UINT64_MAX)
        agent = _checksummed(wire["agent"], "agent")
        prev_hash = _hex(wire["prev_hash"], "prev_hash", _HEX32, 32)
        signature = _hex(wire["signature"], "signature", _HEX65, 65)
        if signature[64] not in (27, 28):
            raise BatchVerificationError(f"signature v is {signature[64]}, expected 27 or 28")
        gpus = _parse_gpus(wire["gpus"])
        samples = _parse_samples(wire["samples"], {g.index for g in gpus})
        return cls._from_checked(rental_id, agent, batch_seq, prev_hash, gpus, samples, signature,
                                 chain_id, market)

    @classmethod
    def from_wire_bytes(cls, body: bytes) -> TelemetryBatch:
        """Parse a JSON body (NaN/Infinity literals refused here, floats by ``from_wire`` with
        the offending field's name) into a batch."""
        try:
            wire = json.loads(body, parse_constant=_refuse_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            if isinstance(exc, BatchVerificationError):
                raise
            raise BatchVerificationError(f"batch body is not JSON: {exc}") from exc
        return cls.from_wire(wire)


def _refuse_constant(name: str) -> Any:
    raise BatchVerificationError(f"{name} is not allowed in telemetry")


def _refuse_fields(where: str, keys: set, expected: frozenset) -> None:
    missing = sorted(expected - keys)
    unknown = sorted(str(k) for k in keys - expected)
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing)}")
    if unknown:
        parts.append(f"unknown {', '.join(unknown)}")
    raise BatchVerificationError(f"{where}: {'; '.join(parts)}")


def _int(value: Any, name: str, low: int, high: int) -> int:
    # type() rather than isinstance(): bool is an int subclass, and True is not a sample value.
    if type(value) is not int:
        raise BatchVerificationError(f"{name} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise BatchVerificationError(f"{name}={value} out of range [{low}, {high}]")
    return value


def _checksummed(value: Any, name: str) -> str:
    if type(value) is not str or not _ADDRESS.match(value):
        raise BatchVerificationError(f"{name} must be a 0x-prefixed 20-byte hex address")
    if to_checksum_address(value) != value:
        raise BatchVerificationError(f"{name} must be an EIP-55 checksummed address")
    return value


def _text(value: Any, name: str) -> str:
    if type(value) is not str or not value or len(value) > MAX_TEXT_CHARS:
        raise BatchVerificationError(f"{name} must be a non-empty string of <= {MAX_TEXT_CHARS}")
    if not value.isprintable():
        raise BatchVerificationError(f"{name} must be printable text")
    return value


def _hex(value: Any, name: str, pattern: re.Pattern[str], size: int) -> bytes:
    if type(value) is not str or not pattern.match(value):
        raise BatchVerificationError(f"{name} must be 0x + {size} bytes of lowercase hex")
    return bytes.fromhex(value[2:])


def _parse_gpus(value: Any) -> tuple[GpuInfo, ...]:
    if type(value) is not list or not value:
        raise BatchVerificationError("gpus must be a non-empty list")
    if len(value) > MAX_GPUS_PER_BATCH:
        raise BatchVerificationError(f"more than {MAX_GPUS_PER_BATCH} gpus")
    gpus = []
    last_index = -1
    for i, item in enumerate(value):
        if type(item) is not dict:
            raise BatchVerificationError(f"gpus[{i}] must be an object")
        if item.keys() != _GPU_FIELD_SET:
            _refuse_fields(f"gpus[{i}]", set(item), _GPU_FIELD_SET)
        index = _int(item["index"], f"gpus[{i}].index", *SAMPLE_RANGES["gpu"])
        if index <= last_index:
            raise BatchVerificationError("gpus must be ordered by index without duplicates")
        last_index = index
        gpus.append(
            GpuInfo(
                index=index,
                uuid=_text(item["uuid"], f"gpus[{i}].uuid"),
                name=_text(item["name"], f"gpus[{i}].name"),
                power_limit_mw=_int(
                    item["power_limit_mw"], f"gpus[{i}].power_limit_mw", *POWER_LIMIT_RANGE_MW
                ),
            )
        )
    return tuple(gpus)


_SAMPLE_CHECKS = tuple((name, *SAMPLE_RANGES[name]) for name in REQUIRED_SAMPLE_FIELDS)


def _parse_samples(value: Any, gpu_indices: set[int]) -> tuple[Sample, ...]:
    if type(value) is not list or not value:
        raise BatchVerificationError("samples must be a non-empty list")
    if len(value) > MAX_SAMPLES_PER_BATCH:
        raise BatchVerificationError(f"more than {MAX_SAMPLES_PER_BATCH} samples")
    samples = []
    last_key = (-1, -1)
    new_sample = Sample
    checks = _SAMPLE_CHECKS
    for i, item in enumerate(value):
        # The hot loop of the node's ingest: no string is built unless something is wrong.
        if type(item) is not dict:
            raise BatchVerificationError(f"samples[{i}] must be an object")
        if item.keys() != _SAMPLE_FIELD_SET:
            if item.keys() != _FOREIGN_SAMPLE_FIELD_SET:
                _refuse_fields(f"samples[{i}]", set(item), _FOREIGN_SAMPLE_FIELD_SET
                               if "foreign_process_count" in item else _SAMPLE_FIELD_SET)
            # Present only when not 0: a 0 is a second spelling of the same sample.
            _int(item["foreign_process_count"], f"samples[{i}].foreign_process_count", 1,
                 SAMPLE_RANGES["foreign_process_count"][1])
        for name, low, high in checks:
            v = item[name]
            if type(v) is not int or not low <= v <= high:
                _int(v, f"samples[{i}].{name}", low, high)  # raises with the details
        sample = new_sample(**item)
        if sample.gpu not in gpu_indices:
            raise BatchVerificationError(f"samples[{i}].gpu={sample.gpu} is not in gpus")
        key = (sample.t_ms, sample.gpu)
        if key <= last_key:
            raise BatchVerificationError(
                f"samples[{i}] out of order: samples are strictly ordered by (t_ms, gpu)"
            )
        last_key = key
        samples.append(sample)
    return tuple(samples)


def sort_samples(samples: Iterable[Sample]) -> tuple[Sample, ...]:
    """Samples in the wire order ``(t_ms, gpu)``."""
    return tuple(sorted(samples, key=lambda s: (s.t_ms, s.gpu)))
