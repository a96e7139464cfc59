"""Issue 9, "Storage": compact exact batches, no padding, archive and prune (real SQLite, real trace)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from oracle.errors import StorageError
from oracle.node.archive import Retention, export_rental, read_archive
from oracle.node.attestor import Attestor
from oracle.node.errors import MalformedBatch, PaddedBatch, TimeRegression
from oracle.node.rentals import InMemoryRentalRegistry, Rental
from oracle.node.storage import NodeStorage
from oracle.node.testing import (
    AGENT_KEY,
    H100,
    NODE_KEY,
    TEST_CHAIN_ID,
    TEST_MARKET,
    TRACE_A,
    chain_batches,
    looped_trace,
    stored_bytes_per_gpu_hour,
)
from oracle.traces import TRACE_TRAIN
from oracle.telemetry.batches import address_of
from oracle.telemetry.codec import decode_batch, encode_batch
from oracle.telemetry.samples import GpuInfo, Sample

pytestmark = pytest.mark.skipif(not TRACE_A.is_file(), reason="shared H100 trace not present")

END_MS = 1_900_000_000_000
RENTAL = 5
KIB_PER_GPU_HOUR_LIMIT = 200


def gpus(count: int) -> tuple[GpuInfo, ...]:
    return tuple(GpuInfo(i, f"GPU-{i:08d}-h100", H100.name, H100.power_limit_mw) for i in range(count))


def make_attestor(db: Path, gpu_count: int = 1, start_ms: int = 0, clock_ms: int = END_MS) -> Attestor:
    registry = InMemoryRentalRegistry([Rental(RENTAL, address_of(AGENT_KEY), gpu_count, "", 300, start_ms, gpu_model=H100.name)])
    return Attestor(storage=NodeStorage(db), registry=registry, node_key=NODE_KEY, chain_id=TEST_CHAIN_ID,
                    market_address=TEST_MARKET, signer_set_version=1, clock=lambda: clock_ms)


@pytest.mark.parametrize("trace", [TRACE_A, TRACE_TRAIN], ids=["trace_a", "trace_train"])
@pytest.mark.parametrize("gpu_count", [1, 8])
def test_telemetry_takes_at_most_200_kib_per_gpu_hour_at_1_hz(tmp_path, gpu_count, trace):
    # An hour at 1 Hz in the agent's default batches: 10 samples per GPU (one batch every 10 s).
    stored, wire = stored_bytes_per_gpu_hour(tmp_path, gpus=gpu_count, path=trace)
    assert stored / 1024 <= KIB_PER_GPU_HOUR_LIMIT, stored / 1024
    assert wire > 3 * stored  # what storing the wire JSON as received took (the issue measured 1,641 KiB)


def test_stored_batches_give_back_the_exact_signed_bytes_and_telemetry_hash(tmp_path):
    samples = looped_trace(600, gpus=2, end_ms=END_MS)
    batches = chain_batches(AGENT_KEY, RENTAL, samples, gpus=gpus(2), samples_per_batch=20)
    attestor = make_attestor(tmp_path / "node.sqlite3", 2)
    for batch in batches:
        attestor.ingest(batch.to_wire_bytes())
    rows = list(attestor.storage.iter_batches(RENTAL, 0, len(batches)))
    assert len(rows) == len(batches)
    for (seq, batch_hash, body), batch in zip(rows, batches):
        decoded = decode_batch(body)
        assert decoded.to_wire_bytes() == batch.to_wire_bytes()
        assert decoded.batch_hash() == batch_hash == batch.batch_hash()
        assert decoded.recover_agent() == address_of(AGENT_KEY)
    _, sequence, _, telemetry_hash = attestor.meter(RENTAL)
    assert (sequence, telemetry_hash) == (len(batches), batches[-1].batch_hash())


def test_metering_reads_the_same_gpus_and_values_the_stored_batches_hold(tmp_path):
    from oracle.telemetry.codec import decode_gpus_and_values
    from oracle.telemetry.samples import SAMPLE_FIELDS

    batches = chain_batches(AGENT_KEY, RENTAL, looped_trace(60, gpus=3, end_ms=END_MS), gpus=gpus(3),
                            samples_per_batch=30)
    for batch in batches:
        expected = (batch.gpus, [tuple(getattr(s, name) for name in SAMPLE_FIELDS) for s in batch.samples])
        assert decode_gpus_and_values(encode_batch(batch)) == expected
        assert decode_gpus_and_values(batch.to_wire_bytes()) == expected  # a legacy JSON row


def test_legacy_json_rows_still_decode():
    batch = chain_batches(AGENT_KEY, RENTAL, looped_trace(20, end_ms=END_MS), samples_per_batch=20)[0]
    assert decode_batch(batch.to_wire_bytes()) == batch == decode_batch(encode_batch(batch))


def test_a_whitespace_padded_body_is_refused_not_stored(tmp_path):
    attestor = make_attestor(tmp_path / "node.sqlite3")
    batch = chain_batches(AGENT_KEY, RENTAL, looped_trace(10, end_ms=END_MS), samples_per_batch=10)[0]
    padded = batch.to_wire_bytes()[:-1] + b" " * 500_000 + b"}"
    with pytest.raises(MalformedBatch, match="not its canonical JSON"):
        attestor.ingest(padded)
    assert attestor.contiguous_batches(RENTAL) == 0


def test_one_sample_padding_batches_are_refused(tmp_path):
    # An agent key adding batches of one sample each, 1 ms apart: no GPU time, only bytes.
    attestor = make_attestor(tmp_path / "node.sqlite3")
    real = looped_trace(10, end_ms=END_MS - 1000)
    first = chain_batches(AGENT_KEY, RENTAL, real, samples_per_batch=10)[0]
    attestor.ingest(first.to_wire_bytes())
    pad = [Sample(0, real[-1].t_ms + 1 + i, real[-1].energy_mj, real[-1].power_mw, 0, 0, 1000, 40) for i in range(5)]
    padding = chain_batches(AGENT_KEY, RENTAL, pad, samples_per_batch=1, first_seq=1, prev_hash=first.batch_hash())
    with pytest.raises(PaddedBatch, match="within 20 ms"):
        attestor.ingest(padding[0].to_wire_bytes())
    dense = [Sample(0, real[-1].t_ms + 1000 + i, real[-1].energy_mj, real[-1].power_mw, 0, 0, 1000, 40)
             for i in range(0, 50, 5)]
    crammed = chain_batches(AGENT_KEY, RENTAL, dense, samples_per_batch=10, first_seq=1, prev_hash=first.batch_hash())
    with pytest.raises(PaddedBatch):
        attestor.ingest(crammed[0].to_wire_bytes())
    assert attestor.contiguous_batches(RENTAL) == 1


def test_samples_already_stored_are_refused(tmp_path):
    attestor = make_attestor(tmp_path / "node.sqlite3", 2)
    samples = looped_trace(20, gpus=2, end_ms=END_MS)
    first = chain_batches(AGENT_KEY, RENTAL, samples[:20], gpus=gpus(2), samples_per_batch=20)[0]
    attestor.ingest(first.to_wire_bytes())
    # The next batch repeats GPU 1's last stored sample (same time, same GPU): a duplicate.
    again = chain_batches(AGENT_KEY, RENTAL, samples[19:30], gpus=gpus(2), samples_per_batch=11, first_seq=1,
                          prev_hash=first.batch_hash())[0]
    with pytest.raises(PaddedBatch):
        attestor.ingest(again.to_wire_bytes())
    older = chain_batches(AGENT_KEY, RENTAL, samples[:10], gpus=gpus(2), samples_per_batch=10, first_seq=1,
                          prev_hash=first.batch_hash())[0]
    with pytest.raises((PaddedBatch, TimeRegression)):
        attestor.ingest(older.to_wire_bytes())
    fine = chain_batches(AGENT_KEY, RENTAL, samples[20:], gpus=gpus(2), samples_per_batch=20, first_seq=1,
                         prev_hash=first.batch_hash())[0]
    assert attestor.ingest(fine.to_wire_bytes()).status == "accepted"


def _ingested(tmp_path: Path) -> tuple[Attestor, list]:
    attestor = make_attestor(tmp_path / "node.sqlite3")
    batches = chain_batches(AGENT_KEY, RENTAL, looped_trace(300, end_ms=END_MS), samples_per_batch=10)
    for batch in batches:
        attestor.ingest(batch.to_wire_bytes())
    return attestor, batches


def test_closed_rental_is_archived_to_a_content_addressed_file_and_pruned_after_the_dispute_window(tmp_path):
    attestor, batches = _ingested(tmp_path)
    storage = attestor.storage
    now = [1_000_000]
    retention = Retention(storage, tmp_path / "archive", closed=lambda: [RENTAL], dispute_window_s=3600,
                          clock_ms=lambda: now[0])
    retention.run_once()
    files = list((tmp_path / "archive").iterdir())
    assert len(files) == 1 and files[0].name.endswith(".jsonl.gz")
    rental_id, archived = read_archive(files[0])  # checks the name is the keccak of the contents
    assert rental_id == RENTAL and [b.to_wire_bytes() for b in archived] == [b.to_wire_bytes() for b in batches]
    assert storage.batch_head(RENTAL)[0] == len(batches)  # still there during the dispute window
    now[0] += 3600 * 1000 - 1
    retention.run_once()
    assert storage.batch_head(RENTAL)[0] == len(batches)
    now[0] += 1
    retention.run_once()
    assert storage.batch_head(RENTAL) == (0, None)
    assert storage.archive_record(RENTAL)[3] == now[0]
    assert (retention.archived, retention.pruned) == (1, 1)


def test_the_same_telemetry_always_gives_the_same_archive_file(tmp_path):
    attestor, _ = _ingested(tmp_path / "a")
    other, _ = _ingested(tmp_path / "b")
    first = export_rental(attestor.storage, RENTAL, tmp_path / "a" / "archive", 1)
    second = export_rental(other.storage, RENTAL, tmp_path / "b" / "archive", 2)
    assert first.name == second.name and first.read_bytes() == second.read_bytes()
    assert export_rental(attestor.storage, RENTAL, tmp_path / "a" / "archive", 3) == first  # idempotent


def test_a_tampered_archive_is_refused(tmp_path):
    attestor, _ = _ingested(tmp_path)
    path = export_rental(attestor.storage, RENTAL, tmp_path / "archive", 1)
    lines = gzip.decompress(path.read_bytes()).split(b"\n")
    lines[3] = lines[3].replace(b'"temp_c":', b'"temp_c":1', 1)
    path.write_bytes(gzip.compress(b"\n".join(lines), mtime=0))
    with pytest.raises(StorageError, match="not its name"):
        read_archive(path)


def test_a_rental_is_never_pruned_without_its_archive(tmp_path):
    attestor, _ = _ingested(tmp_path)
    with pytest.raises(StorageError, match="never archived"):
        attestor.storage.prune_batches(RENTAL, 1)
    assert attestor.storage.prunable(10**15) == []
