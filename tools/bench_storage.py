#!/usr/bin/env python
"""Node storage per GPU-hour at 1 Hz, on the shipped H100 traces (oracle/data/traces).

For each trace and GPU count: an hour of the trace at 1 Hz per GPU (looped, energy counters
continuing), in the agent's default batches (10 samples per GPU), ingested through the node's real
path (verify, encode, group-append) into a fresh SQLite file. Reported: KiB the file grows by per
GPU-hour (WAL checkpointed; page overhead and indexes included), and, side by side, KiB of the same
batches' wire JSON (what the node stored before: the body as received). Goal: <= 200 KiB.

Usage: .venv/bin/python tools/bench_storage.py [--hours 1] [--gpus 1,8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oracle.node.testing import stored_bytes_per_gpu_hour  # noqa: E402
from oracle.traces import TRACE_A, TRACE_TRAIN  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--gpus", default="1,8")
    args = parser.parse_args()
    print(f"{'trace':24} {'GPUs':>4} {'stored KiB/GPU-h':>17} {'wire JSON KiB/GPU-h':>20} {'ratio':>6}  goal <= 200")
    with tempfile.TemporaryDirectory(prefix="gpurent-storage-") as workdir:
        for trace in (TRACE_A, TRACE_TRAIN):
            for gpus in (int(g) for g in args.gpus.split(",")):
                stored, wire = stored_bytes_per_gpu_hour(Path(workdir), gpus, round(args.hours * 3600), trace)
                print(f"{trace.name:24} {gpus:4d} {stored / 1024:17.1f} {wire / 1024:20.1f} {wire / stored:6.1f}  "
                      f"{'ok' if stored / 1024 <= 200 else 'MISSED'}")


if __name__ == "__main__":
    main()
