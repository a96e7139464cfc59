"""How a node stores a telemetry batch: a compact, exact encoding of the signed batch.

``decode_batch(encode_batch(batch))`` is the same batch (signature included), so its canonical
bytes and ``batch_hash`` (the telemetry hash a report commits to) are recovered exactly; a test
proves it on the shipped traces. The encoding (version byte 1) is zlib over:

- a header: canonical JSON of the fields that do not vary inside a batch (chain id, market,
  rental, agent, sequence, GPUs), then ``prev_hash`` (32 bytes) and the signature (65 bytes);
- the samples column by column: GPU index (one byte), then per field the zigzag-varint difference
  from the same GPU's previous sample (time, energy counter, power, utilisations, memory,
  temperature).

Version byte 2 is the same with one more column, ``foreign_process_count``; it is written only
for a batch in which some sample has foreign GPU use, so every other batch keeps version 1's bytes.

Samples of a GPU at 1 Hz differ by small numbers (1000 ms, a few joules), so a sample costs a few
bytes instead of ~130 of JSON (README: "Node storage per GPU-hour" has the figures on the H100
traces).
``decode_batch`` also reads the older stored form, the batch's wire JSON.
"""

from __future__ import annotations

import json
import zlib

from oracle.telemetry.batches import TelemetryBatch, canonical_json, keccak
from oracle.telemetry.samples import SAMPLE_FIELDS, GpuInfo, Sample

VERSION = 1
VERSION_FOREIGN = 2
_DELTA_FIELDS = tuple(name for name in SAMPLE_FIELDS if name != "gpu")
assert SAMPLE_FIELDS == ("gpu", *_DELTA_FIELDS)  # decode builds Sample(gpu, *deltas) positionally
assert _DELTA_FIELDS[-1] == "foreign_process_count"
_COLUMNS = {VERSION: _DELTA_FIELDS[:-1], VERSION_FOREIGN: _DELTA_FIELDS}
# Text that recurs in every header: zlib finds it here instead of spending bytes on it per batch.
_ZDICT = (b'{"agent":"0x","batch_seq":,"chain_id":,"gpus":[{"index":0,"name":"NVIDIA H100 80GB HBM3",'
          b'"power_limit_mw":700000,"uuid":"GPU-"}],"market":"0x","rental_id":')


def gpus_key(gpus: tuple[GpuInfo, ...]) -> bytes:
    """8 bytes that identify a batch's GPU set (a rental's batches must all carry the same)."""
    return keccak(json.dumps([[g.index, g.uuid, g.name, g.power_limit_mw] for g in gpus]).encode())[:8]


def _varint(value: int, out: bytearray) -> None:
    value = value << 1 if value >= 0 else ((-value) << 1) - 1  # zigzag
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
    return (result >> 1 if not result & 1 else -((result + 1) >> 1)), pos


def encode_batch(batch: TelemetryBatch) -> bytes:
    """The stored form of a signed batch (exact: see :func:`decode_batch`)."""
    if batch.signature is None:
        raise ValueError("only signed batches are stored")
    header = canonical_json({
        "chain_id": batch.chain_id, "market": batch.market, "rental_id": batch.rental_id,
        "agent": batch.agent, "batch_seq": batch.batch_seq,
        "gpus": [[g.index, g.uuid, g.name, g.power_limit_mw] for g in batch.gpus],
    })
    out = bytearray()
    _varint(len(header), out)
    out += header + batch.prev_hash + batch.signature
    samples = batch.samples
    version = VERSION_FOREIGN if any(s.foreign_process_count for s in samples) else VERSION
    _varint(len(samples), out)
    out += bytes(s.gpu for s in samples)
    for name in _COLUMNS[version]:
        last: dict[int, int] = {}
        for s in samples:
            value = getattr(s, name)
            _varint(value - last.get(s.gpu, 0), out)
            last[s.gpu] = value
    compressor = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, _ZDICT)
    return bytes([version]) + compressor.compress(bytes(out)) + compressor.flush()


def decode_batch(stored: bytes) -> TelemetryBatch:
    """The batch :func:`encode_batch` stored (or a batch stored as its wire JSON)."""
    if stored[:1] == b"{":
        return TelemetryBatch.from_wire_bytes(stored)
    columns_of = _COLUMNS.get(stored[0]) if stored else None
    if columns_of is None:
        raise ValueError(f"unknown stored batch encoding {stored[:1]!r}")
    decompressor = zlib.decompressobj(15, _ZDICT)
    data = decompressor.decompress(stored[1:]) + decompressor.flush()
    header_len, pos = _read_varint(data, 0)
    header = json.loads(data[pos:pos + header_len])
    pos += header_len
    prev_hash, signature = data[pos:pos + 32], data[pos + 32:pos + 97]
    pos += 97
    count, pos = _read_varint(data, pos)
    gpus = list(data[pos:pos + count])
    pos += count
    columns = [gpus]
    for _ in columns_of:
        last: dict[int, int] = {}
        values = []
        for gpu in gpus:
            delta, pos = _read_varint(data, pos)
            value = last.get(gpu, 0) + delta
            last[gpu] = value
            values.append(value)
        columns.append(values)
    samples = tuple(Sample(*row) for row in zip(*columns))  # SAMPLE_FIELDS order: gpu, then _DELTA_FIELDS
    return TelemetryBatch._from_checked(
        header["rental_id"], header["agent"], header["batch_seq"], prev_hash,
        tuple(GpuInfo(*g) for g in header["gpus"]), samples, signature, header["chain_id"], header["market"],
    )
