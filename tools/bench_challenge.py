#!/usr/bin/env python
"""Proof-of-GPU costs as ratios: node CPU per verification against prover work per solve at the
same size, and bytes moved per challenge.

Small shapes run the whole protocol on the CPU (numpy prover, numpy verifier). Production
shapes (one per GPU model in oracle/proof/params.py) cannot be solved here (no GPU): for those
the verifier is timed on openings built for the drawn cells only (:func:`openings_for_cells`:
random checkpoints whose opened rows are made consistent; they pass every check, so the full
verification runs), and the prover's work is given as integer operations, with the estimated GPU
time from the table. One BLAS thread: the verifier's budget is one core.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python tools/bench_challenge.py            # writes reports/bench_challenge.json
    OPENBLAS_NUM_THREADS=1 .venv/bin/python tools/bench_challenge.py --models "NVIDIA H100 80GB HBM3"
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from oracle.proof.answer import Commitments  # noqa: E402
from oracle.proof.merkle import keccak  # noqa: E402
from oracle.proof.params import DEV_SHAPE, PERFORMANCE, WorkShape, profile_for  # noqa: E402
from oracle.proof.seeds import commitment_digest, initial_root, opening_cells, plan_root_checkpoint, segment_lookups  # noqa: E402
from oracle.proof.solver import NumpySolver, Solution  # noqa: E402
from oracle.proof.verify import verify_openings  # noqa: E402
from oracle.proof.work import Inputs, replay_rows  # noqa: E402

SMALL = {
    "dev": DEV_SHAPE,
    "small-256": WorkShape(n=256, rows=256, table_entries=32, lookups=4, steps_per_segment=6, segments=32,
                           sketch_width=8, group_rows=32, opened=12),
    "medium-512": WorkShape(n=512, rows=1024, table_entries=32, lookups=4, steps_per_segment=6, segments=16,
                            sketch_width=8, group_rows=256, opened=12),
}
UUID, SERIAL = "GPU-bench", "0"


def _bytes_moved(challenge_json: dict, commitment_json: dict, openings_json: list) -> dict[str, int]:
    sizes = {"challenge": len(json.dumps(challenge_json)), "commitment": len(json.dumps(commitment_json)),
             "openings": len(json.dumps({"openings": openings_json}))}
    sizes["total"] = sum(sizes.values())
    return sizes


def _timed_verify(seed, shape, top_root, cells, openings):
    tracemalloc.start()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = verify_openings(seed, shape, top_root, cells, openings)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, cpu, wall, peak


def bench_small(name: str, shape: WorkShape, repeat: int) -> dict:
    rows = []
    for i in range(repeat):
        seed = keccak(f"bench-{name}-{i}".encode())
        cpu0 = time.process_time()
        solution = NumpySolver(max_table_bytes=1 << 30).solve(seed, shape, UUID, SERIAL)
        prover_cpu = time.process_time() - cpu0
        cells = opening_cells(seed, solution.digest, keccak(b"beacon" + seed), shape.opened, shape.segments, shape.rows)
        openings = solution.open(cells)
        result, cpu, wall, peak = _timed_verify(seed, shape, solution.top_root, cells, openings)
        assert result.ok, result.reason
        moved = _bytes_moved({"id": "0x" + seed.hex(), "cells": cells}, {"top_root": "0x" + solution.top_root.hex(),
                             "gpu_uuid": UUID, "gpu_serial": SERIAL, "signature": "0x" + "00" * 65},
                             [o.to_wire() for o in openings])
        rows.append((prover_cpu, cpu, wall, peak, moved["total"]))
    prover_cpu, cpu, wall, peak, moved = (float(np.median([r[j] for r in rows])) for j in range(5))
    return {"shape": name, **shape_facts(shape), "prover_cpu_s": round(prover_cpu, 4),
            "verifier_cpu_s": round(cpu, 4), "verifier_wall_s": round(wall, 4),
            "verifier_peak_mib": round(peak / 2**20, 1), "verifier_over_prover": round(cpu / prover_cpu, 4),
            "bytes_moved": int(moved), "repeat": repeat}


def shape_facts(shape: WorkShape) -> dict:
    return {"n": shape.n, "rows": shape.rows, "table_entries": shape.table_entries, "lookups": shape.lookups,
            "steps_per_segment": shape.steps_per_segment, "segments": shape.segments, "opened": shape.opened,
            "prover_ops": shape.prover_ops, "verifier_macs": shape.verifier_macs,
            "table_gib": round(shape.table_bytes / 2**30, 2), "committed_sketch_mib": shape.committed_bytes >> 20}


def openings_for_cells(seed: bytes, shape: WorkShape, cells: list[tuple[int, int]]) -> Solution:
    """A solution that opens ``cells`` (and only those) correctly: random checkpoint states in
    which each opened end row is the replay of its start row. Verifying it costs what verifying a
    real answer costs; it proves nothing (the cells are known here before the commitment). Needs
    the cells' end checkpoints to differ from the checkpoints their lookups are drawn from (true
    for production shapes: 12 cells among thousands of segments)."""
    inputs = Inputs(seed, shape)
    rng = np.random.default_rng(1)
    ends = {c + 1 for c, _ in cells}
    plan_checkpoints = {plan_root_checkpoint(c) for c, _ in cells} - {0}
    if ends & plan_checkpoints:
        raise ValueError("an opened end checkpoint also draws another cell's lookups; pick other cells")
    states = {cp: rng.integers(-128, 128, size=(shape.rows, shape.n), dtype=np.int8)
              for cp in ends | plan_checkpoints | ({c for c, _ in cells} - {0})}
    commitments = Commitments(shape)
    roots = {0: initial_root(seed)}
    for checkpoint in sorted(plan_checkpoints):
        roots[checkpoint] = Commitments(shape).add_checkpoint_at(checkpoint, inputs.sketch(states[checkpoint]))
    for segment, row in cells:
        plan = segment_lookups(seed, segment, roots[plan_root_checkpoint(segment)], shape.steps_per_segment,
                               shape.lookups, shape.table_entries, shape.rows)
        start = states[segment][row] if segment > 0 else inputs.x0[row]
        states[segment + 1][row] = replay_rows(inputs, start.reshape(1, -1), [row], [plan])[0]
    for checkpoint in range(1, shape.segments + 1):
        if checkpoint in states:
            commitments.add_checkpoint(inputs.sketch(states[checkpoint]))
        else:  # never opened: any root will do
            commitments.sketches.append(None)
            commitments.trees.append([[keccak(checkpoint.to_bytes(8, "big"))]])
    return Solution(seed, shape, commitments, lambda wanted: {(c, r): states[c][r].tobytes() for c, r in wanted},
                    inputs, UUID, SERIAL, 0)


def bench_production(model: str) -> dict:
    profile = profile_for(model)
    shape = profile.shape
    seed = keccak(b"bench-production" + model.encode())
    cells = opening_cells(seed, keccak(b"commitment"), keccak(b"beacon"), shape.opened, shape.segments, shape.rows)
    solution = openings_for_cells(seed, shape, cells)
    openings = solution.open(cells)
    result, cpu, wall, peak = _timed_verify(seed, shape, solution.top_root, cells, openings)
    moved = _bytes_moved({"id": "0x" + seed.hex(), "cells": cells}, {"top_root": "0x" + solution.top_root.hex(),
                         "gpu_uuid": UUID, "gpu_serial": SERIAL, "signature": "0x" + "00" * 65},
                         [o.to_wire() for o in openings])
    return {"model": model, **shape_facts(shape), "verified": result.ok, "reason": result.reason,
            "verifier_cpu_s": round(cpu, 3), "verifier_wall_s": round(wall, 3),
            "verifier_peak_mib": round(peak / 2**20, 1), "bytes_moved": moved["total"],
            "prover_estimated_gpu_ms": profile.expected_solve_ms, "commit_deadline_ms": profile.commit_deadline_ms,
            "deadline_basis": profile.basis,
            "verifier_cpu_over_prover_gpu_time": round(cpu * 1000 / profile.expected_solve_ms, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--models", nargs="*", default=[p.model for p in PERFORMANCE])
    parser.add_argument("--out", default=str(REPO / "reports" / "bench_challenge.json"))
    args = parser.parse_args()
    report = {"command": " ".join(["OPENBLAS_NUM_THREADS=" + os.environ["OPENBLAS_NUM_THREADS"], sys.executable,
                                   *sys.argv]),
              "cpu": os.uname().machine, "small": [], "production": []}
    for name, shape in SMALL.items():
        row = bench_small(name, shape, args.repeat)
        report["small"].append(row)
        print(json.dumps(row))
    for model in args.models:
        row = bench_production(model)
        report["production"].append(row)
        print(json.dumps(row))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
