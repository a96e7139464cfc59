"""Wire batches: canonical bytes, hash chain, agent signatures and strict parsing."""

from __future__ import annotations

import copy
import json

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle.errors import BatchVerificationError
from oracle.telemetry.batches import (
    GENESIS_PREV_HASH,
    TelemetryBatch,
    canonical_json,
    recover_batch_signer,
)
from oracle.telemetry.samples import GpuInfo, Sample

AGENT_KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
AGENT = Account.from_key(AGENT_KEY).address
OTHER_KEY = bytes.fromhex("11" * 32)
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

GPUS = (
    GpuInfo(0, "GPU-4612aaaa-0000-0000-0000-000000000000", "NVIDIA H100 80GB HBM3", 700_000),
    GpuInfo(1, "GPU-4612bbbb-0000-0000-0000-000000000000", "NVIDIA H100 80GB HBM3", 700_000),
)
SAMPLES = (
    Sample(0, 1795743108464, 3312519, 79039, 0, 0, 1100, 42),
    Sample(1, 1795743108464, 9312519, 80011, 3, 1, 1200, 40),
    Sample(0, 1795743109464, 3436173, 124010, 99, 60, 3200, 43),
)


def make_batch(**changes) -> TelemetryBatch:
    fields = dict(
        rental_id=7, agent=AGENT, batch_seq=0, prev_hash=GENESIS_PREV_HASH, gpus=GPUS,
        samples=SAMPLES, chain_id=31337, market="0x" + "42" * 20,
    )
    fields.update(changes)
    return TelemetryBatch(**fields)


SIGNED = make_batch().signed(AGENT_KEY)

# Pinned: the canonical bytes and hash of SIGNED. A change here is a wire-format change and
# must go through docs/protocol.md and the node together.
EXPECTED_CANONICAL = (
    b'{"agent":"0x2c7536E3605D9C16a7a3D7b1898e529396a65c23","batch_seq":0,"chain_id":31337,"gpus":['
    b'{"index":0,"name":"NVIDIA H100 80GB HBM3","power_limit_mw":700000,'
    b'"uuid":"GPU-4612aaaa-0000-0000-0000-000000000000"},'
    b'{"index":1,"name":"NVIDIA H100 80GB HBM3","power_limit_mw":700000,'
    b'"uuid":"GPU-4612bbbb-0000-0000-0000-000000000000"}],'
    b'"market":"0x4242424242424242424242424242424242424242",'
    b'"prev_hash":"0x0000000000000000000000000000000000000000000000000000000000000000",'
    b'"rental_id":7,"samples":['
    b'{"energy_mj":3312519,"gpu":0,"mem_used_mib":1100,"power_mw":79039,"t_ms":1795743108464,'
    b'"temp_c":42,"util_gpu_pct":0,"util_mem_pct":0},'
    b'{"energy_mj":9312519,"gpu":1,"mem_used_mib":1200,"power_mw":80011,"t_ms":1795743108464,'
    b'"temp_c":40,"util_gpu_pct":3,"util_mem_pct":1},'
    b'{"energy_mj":3436173,"gpu":0,"mem_used_mib":3200,"power_mw":124010,"t_ms":1795743109464,'
    b'"temp_c":43,"util_gpu_pct":99,"util_mem_pct":60}]}'
)


def test_canonical_bytes_are_the_pinned_protocol_bytes():
    assert SIGNED.canonical_bytes() == EXPECTED_CANONICAL
    assert SIGNED.canonical_bytes() == canonical_json(json.loads(EXPECTED_CANONICAL))


def test_batch_hash_is_keccak_of_canonical_json_and_pinned():
    from eth_hash.auto import keccak

    assert SIGNED.batch_hash() == keccak(EXPECTED_CANONICAL)
    assert SIGNED.batch_hash().hex() == (
        "37f99e23ba706e42d76b08a8be384ef5902a308a748a6d9342cba099f4e9785d"
    )


def test_canonical_json_refuses_floats():
    with pytest.raises(BatchVerificationError):
        canonical_json({"a": [1, 2.5]})


def test_signed_signature_equals_eth_account_and_recovers_the_agent():
    message = encode_defunct(primitive=SIGNED.batch_hash())
    assert SIGNED.signature == bytes(Account.sign_message(message, AGENT_KEY).signature)
    assert SIGNED.recover_agent() == AGENT
    assert Account.recover_message(message, signature=SIGNED.signature) == AGENT
    SIGNED.verify_signature(expected_agent=AGENT.lower())


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.integers(1, 2**200))
def test_recovery_equals_eth_account_for_any_hash_and_key(digest, key_int):
    key = (key_int % (SECP256K1_N - 1) + 1).to_bytes(32, "big")
    from oracle.telemetry.batches import sign_batch_hash

    signature = sign_batch_hash(key, digest)
    expected = Account.recover_message(encode_defunct(primitive=digest), signature=signature)
    assert recover_batch_signer(digest, signature) == expected == Account.from_key(key).address


def test_signed_refuses_a_key_that_is_not_the_agents():
    with pytest.raises(BatchVerificationError):
        make_batch().signed(OTHER_KEY)


def test_wire_round_trip_keeps_the_hash_and_signature():
    wire = SIGNED.to_wire()
    parsed = TelemetryBatch.from_wire(json.loads(json.dumps(wire)))
    assert parsed == SIGNED
    assert parsed.batch_hash() == SIGNED.batch_hash()
    assert parsed.recover_agent() == AGENT
    assert TelemetryBatch.from_wire_bytes(SIGNED.to_wire_bytes()) == SIGNED


def test_unsigned_batch_has_no_wire_form():
    with pytest.raises(BatchVerificationError):
        make_batch().to_wire()


TAMPERS = [
    ("rental_id", lambda w: w.__setitem__("rental_id", 8)),
    ("batch_seq", lambda w: w.__setitem__("batch_seq", 1)),
    ("prev_hash", lambda w: w.__setitem__("prev_hash", "0x" + "01" * 32)),
    ("gpu uuid", lambda w: w["gpus"][0].__setitem__("uuid", "GPU-evil")),
    ("gpu name", lambda w: w["gpus"][1].__setitem__("name", "NVIDIA B200")),
    ("power limit", lambda w: w["gpus"][0].__setitem__("power_limit_mw", 1_000_000)),
]
TAMPERS += [
    (f"sample {name}", lambda w, name=name: w["samples"][2].__setitem__(
        name, w["samples"][2][name] + 1))
    for name in ("t_ms", "energy_mj", "power_mw", "util_gpu_pct", "util_mem_pct",
                 "mem_used_mib", "temp_c")
]
TAMPERS += [
    ("drop a sample", lambda w: w["samples"].pop()),
    ("agent", lambda w: w.__setitem__("agent", Account.from_key(OTHER_KEY).address)),
]


@pytest.mark.parametrize("what,tamper", TAMPERS, ids=[t[0] for t in TAMPERS])
def test_tampering_any_field_breaks_verification(what, tamper):
    wire = copy.deepcopy(SIGNED.to_wire())
    tamper(wire)
    parsed = TelemetryBatch.from_wire(wire)
    assert parsed.batch_hash() != SIGNED.batch_hash()
    with pytest.raises(BatchVerificationError):
        parsed.verify_signature(expected_agent=AGENT)


def test_tampered_signature_fails_verification():
    wire = SIGNED.to_wire()
    sig = bytearray(SIGNED.signature)
    sig[10] ^= 1
    wire["signature"] = "0x" + sig.hex()
    try:
        recovered = TelemetryBatch.from_wire(wire).recover_agent()
    except BatchVerificationError:
        return
    assert recovered != AGENT


def _wire(**changes):
    wire = copy.deepcopy(SIGNED.to_wire())
    wire.update(changes)
    return wire


def _sample(i, **changes):
    wire = copy.deepcopy(SIGNED.to_wire())
    wire["samples"][i].update(changes)
    return wire


def _gpu(i, **changes):
    wire = copy.deepcopy(SIGNED.to_wire())
    wire["gpus"][i].update(changes)
    return wire


HIGH_S = bytearray(SIGNED.signature)
_N = SECP256K1_N
HIGH_S[32:64] = (_N - int.from_bytes(SIGNED.signature[32:64], "big")).to_bytes(32, "big")
HIGH_S[64] = 55 - SIGNED.signature[64]

REFUSALS = {
    "not an object": [1, 2],
    "unknown field": _wire(extra=1),
    "missing field": {k: v for k, v in SIGNED.to_wire().items() if k != "samples"},
    "bool rental_id": _wire(rental_id=True),
    "float rental_id": _wire(rental_id=7.0),
    "string rental_id": _wire(rental_id="7"),
    "negative batch_seq": _wire(batch_seq=-1),
    "batch_seq above uint64": _wire(batch_seq=2**64),
    "lowercase agent": _wire(agent=AGENT.lower()),
    "short agent": _wire(agent=AGENT[:-2]),
    "short prev_hash": _wire(prev_hash="0x" + "00" * 31),
    "uppercase prev_hash": _wire(prev_hash="0x" + "AB" * 32),
    "prev_hash without 0x": _wire(prev_hash="00" * 32),
    "64-byte signature": _wire(signature="0x" + "11" * 64),
    "signature v=1": _wire(signature="0x" + SIGNED.signature[:64].hex() + "01"),
    "empty gpus": _wire(gpus=[]),
    "empty samples": _wire(samples=[]),
    "gpus out of order": _wire(gpus=list(reversed(SIGNED.to_wire()["gpus"]))),
    "gpu unknown field": _gpu(0, serial="x"),
    "gpu zero power limit": _gpu(0, power_limit_mw=0),
    "gpu empty uuid": _gpu(0, uuid=""),
    "gpu uuid not text": _gpu(0, uuid=5),
    "sample on unknown gpu": _sample(2, gpu=5),
    "sample float power": _sample(0, power_mw=79039.0),
    "sample NaN power": _sample(0, power_mw=float("nan")),
    "sample bool util": _sample(0, util_gpu_pct=False),
    "sample util over 100": _sample(0, util_gpu_pct=101),
    "sample negative energy": _sample(0, energy_mj=-1),
    "sample negative time": _sample(0, t_ms=-5),
    "sample missing temp": {
        **SIGNED.to_wire(),
        "samples": [{k: v for k, v in s.items() if k != "temp_c"}
                    for s in SIGNED.to_wire()["samples"]],
    },
    "sample foreign_process_count 0 spelled out": _sample(0, foreign_process_count=0),
    "sample foreign_process_count negative": _sample(0, foreign_process_count=-1),
    "sample foreign_process_count above the range": _sample(0, foreign_process_count=1025),
    "sample foreign_process_count bool": _sample(0, foreign_process_count=True),
    "samples out of order": _wire(samples=list(reversed(SIGNED.to_wire()["samples"]))),
    "duplicate sample": _wire(samples=SIGNED.to_wire()["samples"][:1] * 2),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_from_wire_refuses(case):
    with pytest.raises(BatchVerificationError):
        TelemetryBatch.from_wire(REFUSALS[case])


def test_from_wire_parses_a_high_s_signature_but_recovery_refuses_it():
    wire = _wire(signature="0x" + bytes(HIGH_S).hex())
    with pytest.raises(BatchVerificationError):
        TelemetryBatch.from_wire(wire).recover_agent()


@pytest.mark.parametrize("body", [b"{", b'{"rental_id": NaN}', b"\xff", b'{"a": Infinity}'])
def test_from_wire_bytes_refuses_bad_json(body):
    with pytest.raises(BatchVerificationError):
        TelemetryBatch.from_wire_bytes(body)


def test_chained_batches_commit_to_their_predecessor():
    second = make_batch(batch_seq=1, prev_hash=SIGNED.batch_hash()).signed(AGENT_KEY)
    assert second.prev_hash == SIGNED.batch_hash()
    assert second.batch_hash() != SIGNED.batch_hash()
    assert TelemetryBatch.from_wire(second.to_wire()).prev_hash == SIGNED.batch_hash()


_ints = st.integers(0, 2**63 - 1)
_texts = st.text(min_size=1, max_size=20)  # any unicode, quotes and controls included
_samples = st.lists(
    st.builds(Sample, gpu=st.integers(0, 3), t_ms=_ints, energy_mj=_ints, power_mw=_ints,
              util_gpu_pct=st.integers(0, 100), util_mem_pct=st.integers(0, 100),
              mem_used_mib=_ints, temp_c=st.integers(0, 200),
              foreign_process_count=st.one_of(st.just(0), st.integers(1, 1024))),
    min_size=1, max_size=6,
)
_gpus = st.lists(
    st.builds(GpuInfo, index=st.integers(0, 3), uuid=_texts, name=_texts,
              power_limit_mw=st.integers(1, 10_000_000)),
    min_size=1, max_size=4,
)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**256 - 1), st.integers(0, 2**64 - 1), st.binary(min_size=32, max_size=32),
       _gpus, _samples)
def test_fast_canonical_bytes_equal_json_dumps_of_the_wire_dict(rental_id, seq, prev, gpus,
                                                                  samples):
    batch = make_batch(rental_id=rental_id, batch_seq=seq, prev_hash=prev, gpus=tuple(gpus),
                       samples=tuple(samples))
    assert batch.canonical_bytes() == canonical_json(batch.unsigned_wire())
    signed = batch.signed(AGENT_KEY)
    assert signed.to_wire_bytes() == canonical_json(signed.to_wire())


@pytest.mark.parametrize("bad", [
    dict(rental_id=True), dict(batch_seq=1.0), dict(prev_hash=b"\x00" * 31),
    dict(samples=(Sample(0, 1.5, 1, 1, 1, 1, 1, 1),)),
    dict(samples=(Sample(0, 1, True, 1, 1, 1, 1, 1),)),
    dict(gpus=(GpuInfo(0, "u", "n", 700_000.0),)),
])
def test_constructor_refuses_values_whose_canonical_bytes_would_be_ambiguous(bad):
    with pytest.raises(BatchVerificationError):
        make_batch(**bad)


def test_checksum_matches_eth_utils():
    from eth_utils import to_checksum_address as reference

    from oracle.telemetry.batches import to_checksum_address

    for i in range(50):
        raw = bytes([i * 7 % 256]) * 3 + bytes(range(i, i + 17))
        assert to_checksum_address(raw) == reference(raw)
        assert to_checksum_address("0x" + raw.hex()) == reference(raw)
