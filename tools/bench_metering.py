"""Benchmark: CPU per usage report of an 8-GPU rental at 1 Hz, after 1 h, 24 h and 30 days.

Side by side, in one run:
- **incremental** (today's node): the report step the attestor runs — the newest meter
  checkpoint read from a real SQLite file, the new batch (60 s x 8 GPUs = 480 samples) decoded
  from its wire bytes, fed, totals read, the checkpoint written back;
- **node end-to-end** (1 h, 24 h): ``Attestor.usage_report`` on a real node database holding
  every batch of the rental (meter, record, sign), for the newest sequence;
- **full re-meter** (the node before issue 9; 1 h, 24 h): ``meter_samples`` over the whole
  history, which every report request cost (2.0 s for 22 h measured in issue 9), decoded
  samples already in memory.

The telemetry is synthetic but honest-shaped: the real training trace's 1 Hz power and
utilization, looped, with per-GPU noise (so it is not copied telemetry), counters that agree.

    .venv/bin/python tools/bench_metering.py            # 1 h, 24 h, 30 days
    .venv/bin/python tools/bench_metering.py --days 2   # quicker: 1 h, 24 h, 2 days
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from oracle.metering import DEFAULT_POLICY, MeterState, feed, meter_samples, new_state, totals  # noqa: E402
from oracle.node.attestor import Attestor  # noqa: E402
from oracle.node.rentals import InMemoryRentalRegistry, Rental, meter_terms  # noqa: E402
from oracle.node.storage import NodeStorage  # noqa: E402
from oracle.node.testing import AGENT_KEY, NODE_KEY, chain_batches  # noqa: E402
from oracle.telemetry.batches import TelemetryBatch, address_of  # noqa: E402
from oracle.telemetry.codec import decode_batch, encode_batch  # noqa: E402
from oracle.telemetry.samples import GpuInfo, Sample, read_trace_csv  # noqa: E402
from oracle.traces import TRACE_TRAIN  # noqa: E402

GPUS = 8
MODEL = "NVIDIA H100 80GB HBM3"
BATCH_S = 60
START_MS = 1_800_000_000_000
RENTAL_ID = 1


class Telemetry:
    """An endless honest-shaped 8-GPU, 1 Hz stream, generated a batch at a time."""

    def __init__(self, seed: int = 7) -> None:
        trace = read_trace_csv(TRACE_TRAIN)[::10]
        self.shape = [(s.power_mw, s.util_gpu_pct) for s in trace]
        self.rng = random.Random(seed)
        self.energy = [10**9] * GPUS
        self.t_s = 0
        self.gpus = [GpuInfo(i, f"GPU-bench-{i}", MODEL, 700_000) for i in range(GPUS)]

    def batch(self, seconds: int = BATCH_S) -> list[Sample]:
        out = []
        rng, shape = self.rng, self.shape
        for _ in range(seconds):
            self.t_s += 1
            power0, util = shape[self.t_s % len(shape)]
            for g in range(GPUS):
                power = power0 + rng.randrange(-5000, 5000)
                self.energy[g] += power  # mW over 1 s = mJ
                out.append(Sample(g, START_MS + self.t_s * 1000, self.energy[g], power, util, util // 3, 30_000, 60))
        return out


def rental() -> Rental:
    return Rental(RENTAL_ID, address_of(AGENT_KEY), GPUS, "US", 400, START_MS, gpu_model=MODEL)


def cpu_ms(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.process_time()
        result = fn()
        times.append((time.process_time() - t0) * 1000)
    return statistics.median(times), result


def incremental_step(hours: float, telemetry: Telemetry, workdir: Path, repeat: int) -> tuple[float, int]:
    """Build the state after ``hours`` (fed directly), checkpoint it, then time the report step."""
    terms = meter_terms(rental())
    state = new_state(telemetry.gpus, terms)
    batches = int(hours * 3600 // BATCH_S)
    for _ in range(batches):
        feed(state, terms, DEFAULT_POLICY, telemetry.batch())
    storage = NodeStorage(workdir / f"inc-{hours}.sqlite3")
    key = terms.checkpoint_key()
    storage.put_checkpoint(RENTAL_ID, batches, key, state.to_bytes())
    stored = encode_batch(TelemetryBatch(RENTAL_ID, address_of(AGENT_KEY), batches, bytes(32), tuple(telemetry.gpus),
                                         tuple(telemetry.batch()), chain_id=31337,
                                         market="0x" + "42" * 20).signed(AGENT_KEY))  # as the node stores it

    def step():
        _, blob = storage.checkpoint_at_most(RENTAL_ID, batches, key)
        st = MeterState.from_bytes(blob)
        feed(st, terms, DEFAULT_POLICY, decode_batch(stored).samples)
        out = totals(st, terms)
        storage.put_checkpoint(RENTAL_ID, batches + 1, key, st.to_bytes())
        return out

    ms, _ = cpu_ms(step, repeat)
    size = len(state.to_bytes())
    storage.close()
    return ms, size


def node_and_full(hours: float, workdir: Path, repeat: int) -> tuple[float, float, int]:
    """A real node holding every batch: one new report end to end; and the full re-meter."""
    telemetry = Telemetry(seed=11)
    samples: list[Sample] = []
    for _ in range(int(hours * 3600 // BATCH_S)):
        samples.extend(telemetry.batch())
    node = Attestor(storage=NodeStorage(workdir / f"node-{hours}.sqlite3"),
                    registry=InMemoryRentalRegistry([rental()]), node_key=NODE_KEY, chain_id=31337,
                    market_address="0x" + "42" * 20, signer_set_version=1)
    batches = chain_batches(AGENT_KEY, RENTAL_ID, samples, gpus=telemetry.gpus, samples_per_batch=BATCH_S * GPUS)
    for batch in batches[:-1]:  # each arrives when it was made (the node's clock follows)
        node.ingest(batch.to_wire_bytes(), now_ms=batch.samples[-1].t_ms + 1000)
    node.usage_report(RENTAL_ID, len(batches) - 1)  # the previous report (and checkpoint)
    node.ingest(batches[-1].to_wire_bytes(), now_ms=batches[-1].samples[-1].t_ms + 1000)
    newest = len(batches)

    def forget_newest() -> None:  # so each repetition meters the new batch again
        node.metering.forget_cached()
        node.storage._conn.execute("DELETE FROM meter_checkpoints WHERE sequence=?", (newest,))

    times = []
    for _ in range(repeat):
        forget_newest()
        t0 = time.process_time()
        node.meter(RENTAL_ID, newest)
        times.append((time.process_time() - t0) * 1000)
    forget_newest()
    t0 = time.process_time()
    node.usage_report(RENTAL_ID, newest)  # meter, record, sign: what GET /report costs
    report_ms = (time.process_time() - t0) * 1000
    node_ms = max(statistics.median(times), report_ms)
    terms = meter_terms(rental())
    full_ms, _ = cpu_ms(lambda: meter_samples(samples, telemetry.gpus, terms=terms), 1)
    node.storage.close()
    return node_ms, full_ms, len(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=30.0, help="the longest history (default 30)")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"8 GPUs at 1 Hz, a report per {BATCH_S} s batch ({BATCH_S * GPUS} samples); CPU ms per report")
    print(f"{'history':>10} {'samples':>11} {'incremental':>12} {'node e2e':>9} {'full re-meter':>14} {'state B':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for label, hours in (("1 h", 1), ("24 h", 24), (f"{args.days:g} d", args.days * 24)):
            inc_ms, size = incremental_step(hours, Telemetry(), workdir, args.repeat)
            count = int(hours * 3600) * GPUS
            if hours <= 24:
                node_ms, full_ms, count = node_and_full(hours, workdir, max(3, args.repeat // 4))
                print(f"{label:>10} {count:>11,} {inc_ms:>12.1f} {node_ms:>9.1f} {full_ms:>14.1f} {size:>8}")
            else:
                print(f"{label:>10} {count:>11,} {inc_ms:>12.1f} {'-':>9} {'(not run)':>14} {size:>8}")
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the whole run {rss_mib:.0f} MiB (the 24 h full re-meter holds every sample)")


if __name__ == "__main__":
    main()
