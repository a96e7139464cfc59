#!/usr/bin/env python
"""Proof-of-GPU measurements on a real GPU (run through tools/gpu_check.sh on an H100 or H200).

Records, into ``--out``: the exact command and environment, the GPU's NVML name, UUID and
serial, bit-exactness of the CUDA solver against the numpy reference, solve/open/verify times
per challenge size (up to the model's production start and periodic sizes), the slowdown of a
training loop on the same GPU while challenges run (and amortized at the protocol rate), and
the false-reject count over at least 100 honest challenges answered while that loop runs.

``--dry-run`` runs the same steps on the CPU at small sizes (numpy solver, numpy "training"),
to check the script where there is no GPU; its numbers mean nothing about any GPU.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # CUDA device 0 == NVML device 0

from oracle.proof.merkle import keccak  # noqa: E402
from oracle.proof.params import MEAN_INTERVAL_S, WorkShape, deadline_ms, profile_for  # noqa: E402
from oracle.proof.seeds import opening_cells  # noqa: E402
from oracle.proof.solver import NumpySolver  # noqa: E402
from oracle.proof.verify import verify_openings  # noqa: E402

EXACTNESS_SHAPES = {
    "dev": WorkShape(64, 64, 8, 2, 2, 8, 8, 16, 8),
    "small-256": WorkShape(256, 256, 32, 4, 6, 32, 8, 32, 12),
}
REJECT_SHAPE = WorkShape(n=2048, rows=8192, table_entries=64, lookups=4, steps_per_segment=6, segments=64,
                         sketch_width=8, group_rows=256, opened=12)
DRY_REJECT_SHAPE = WorkShape(64, 64, 8, 2, 2, 8, 8, 16, 8)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def identity(dry_run: bool) -> dict:
    if dry_run:
        return {"name": "dry-run (CPU)", "uuid": "GPU-dry-run", "serial": "0", "memory_mib": 0}
    import pynvml

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    text = lambda v: v.decode() if isinstance(v, bytes) else str(v)  # noqa: E731
    try:
        serial = text(pynvml.nvmlDeviceGetSerial(handle))
    except pynvml.NVMLError as exc:
        serial = f"unavailable ({exc})"
    out = {"name": text(pynvml.nvmlDeviceGetName(handle)), "uuid": text(pynvml.nvmlDeviceGetUUID(handle)),
           "serial": serial, "memory_mib": pynvml.nvmlDeviceGetMemoryInfo(handle).total // 2**20,
           "power_limit_mw": pynvml.nvmlDeviceGetPowerManagementDefaultLimit(handle),
           "driver": text(pynvml.nvmlSystemGetDriverVersion())}
    pynvml.nvmlShutdown()
    return out


def solver(dry_run: bool):
    if dry_run:
        return NumpySolver(max_table_bytes=1 << 30)
    from oracle.proof.solver_torch import TorchSolver

    return TorchSolver(0)


def one_challenge(solve, shape: WorkShape, gpu: dict, label: str) -> dict:
    """Solve, open the drawn cells, verify with the numpy verifier; times of each step."""
    seed = keccak(f"gpu-check {label} {time.time_ns()}".encode())
    started = time.perf_counter()
    solution = solve.solve(seed, shape, gpu["uuid"], gpu["serial"])
    solve_ms = (time.perf_counter() - started) * 1000
    cells = opening_cells(seed, solution.digest, keccak(b"beacon" + seed), shape.opened, shape.segments, shape.rows)
    started = time.perf_counter()
    openings = solution.open(cells)
    open_ms = (time.perf_counter() - started) * 1000
    cpu0 = time.process_time()
    verdict = verify_openings(seed, shape, solution.top_root, cells, openings)
    verify_cpu_s = time.process_time() - cpu0
    return {"solve_ms": round(solve_ms, 1), "open_ms": round(open_ms, 1), "verify_cpu_s": round(verify_cpu_s, 3),
            "ok": verdict.ok, "reason": verdict.reason, "top_root": "0x" + solution.top_root.hex()}


def exactness_shapes(dry_run: bool) -> dict[str, WorkShape]:
    """Both sizes on a GPU; the dev size alone on the CPU (numpy takes ~15 s per 256 solve)."""
    return {"dev": EXACTNESS_SHAPES["dev"]} if dry_run else dict(EXACTNESS_SHAPES)


def exactness(solve, gpu: dict, dry_run: bool = False) -> list[dict]:
    rows = []
    for name, shape in exactness_shapes(dry_run).items():
        seed = keccak(b"exactness" + name.encode())
        reference = NumpySolver().solve(seed, shape, gpu["uuid"], gpu["serial"]).top_root
        measured = solve.solve(seed, shape, gpu["uuid"], gpu["serial"]).top_root
        rows.append({"shape": name, "bit_identical": measured == reference, "numpy_root": "0x" + reference.hex(),
                     "solver_root": "0x" + measured.hex()})
        log(f"exactness {name}: {'identical' if measured == reference else 'DIFFERENT'}")
    return rows


# -- a training loop on the same GPU, in its own process -------------------------------------------
def training_loop(stop_at: float, progress: "mp.Queue", dry_run: bool) -> None:
    """A small bf16 MLP training loop; reports (time, iterations) every 0.5 s."""
    iterations, last = 0, time.perf_counter()
    if dry_run:
        import numpy as np

        w = np.random.default_rng(0).standard_normal((256, 256))
        while time.time() < stop_at:
            x = np.random.default_rng(iterations).standard_normal((64, 256))
            w -= 1e-6 * (x.T @ (x @ w))
            iterations += 1
            if time.perf_counter() - last > 0.5:
                progress.put((time.time(), iterations))
                last = time.perf_counter()
        progress.put((time.time(), iterations))
        return
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(4096, 4096) for _ in range(8)]).cuda().to(torch.bfloat16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(8192, 4096, device="cuda", dtype=torch.bfloat16)
    while time.time() < stop_at:
        loss = model(x).float().pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        iterations += 1
        if iterations % 4 == 0:
            torch.cuda.synchronize()
            if time.perf_counter() - last > 0.5:
                progress.put((time.time(), iterations))
                last = time.perf_counter()
    torch.cuda.synchronize()
    progress.put((time.time(), iterations))


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def deadline_table(report: dict, profile) -> str:
    """Markdown: per measured size, the median solve time and the deadline the protocol derives
    from it (margin x time + network allowance); the production rows beside today's estimate."""
    lines = ["| size | prover ops | solve ms (median) | deadline ms | estimate today: expected / deadline ms |",
             "|---|---|---|---|---|"]
    for name, entry in report["solve_times"].items():
        solve = median([r["solve_ms"] for r in entry["runs"]])
        estimate = ""
        if profile is not None and name in ("production-start", "production-periodic"):
            size = profile.start if name == "production-start" else profile.periodic
            estimate = f"{size.expected_solve_ms:,} / {size.commit_deadline_ms:,}"
        lines.append(f"| {name} | {entry['prover_ops']:.3g} | {solve:,.0f} | {deadline_ms(int(solve) + 1):,} | {estimate} |")
    return "\n".join(lines) + "\n"


def rate(points: list[tuple[float, int]], start: float, end: float) -> float:
    inside = [p for p in points if start <= p[0] <= end]
    if len(inside) < 2:
        return float("nan")
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--dry-run", action="store_true", help="CPU, small sizes: checks the script, measures nothing")
    parser.add_argument("--reject-challenges", type=int, default=100,
                        help="honest challenges under the training loop (at least 100 on a GPU)")
    parser.add_argument("--phase-s", type=float, default=30.0, help="seconds of training alone, then with challenges")
    parser.add_argument("--warmup-s", type=float, default=5.0, help="training loop warm-up before the baseline")
    args = parser.parse_args(argv)
    if not args.dry_run and args.reject_challenges < 100:
        parser.error("--reject-challenges: at least 100 on a GPU (the issue's false-reject sample)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"command": " ".join([sys.executable, *sys.argv]), "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "host": socket.gethostname(), "python": platform.python_version(), "dry_run": args.dry_run}
    if not args.dry_run:
        import torch

        report["torch"] = torch.__version__
        report["cuda"] = torch.version.cuda
        report["nvidia_smi"] = subprocess.run(["nvidia-smi", "-q"], capture_output=True, text=True).stdout[:20000]
    gpu = identity(args.dry_run)
    report["gpu"] = gpu
    log(f"GPU {gpu['name']} uuid {gpu['uuid']} serial {gpu['serial']}")
    solve = solver(args.dry_run)
    report["exactness"] = exactness(solve, gpu, args.dry_run)
    if not all(row["bit_identical"] for row in report["exactness"]):
        (out / "gpu_check.json").write_text(json.dumps(report, indent=2))
        raise SystemExit("the solver's results differ from the numpy reference: no timing is meaningful")

    sizes: dict[str, WorkShape] = exactness_shapes(args.dry_run)
    sizes["reject-size"] = DRY_REJECT_SHAPE if args.dry_run else REJECT_SHAPE
    profile = None
    if not args.dry_run:
        try:
            profile = profile_for(gpu["name"])
        except Exception as exc:  # a model gpurent does not list yet
            log(f"no production profile for {gpu['name']!r}: {exc}")
        if profile is not None:
            sizes["production-periodic"] = profile.periodic.shape
            sizes["production-start"] = profile.start.shape
    report["solve_times"] = {}
    for name, shape in sizes.items():  # before the training loop: the start size needs 85 % of the memory
        repeats = 2 if name.startswith("production") else 3
        runs = [one_challenge(solve, shape, gpu, name) for _ in range(repeats)]
        report["solve_times"][name] = {"shape": shape.__dict__ if hasattr(shape, "__dict__") else
                                       {f: getattr(shape, f) for f in shape.__slots__},
                                       "prover_ops": shape.prover_ops, "runs": runs}
        log(f"{name}: solve ms {[r['solve_ms'] for r in runs]}, all verified: {all(r['ok'] for r in runs)}")

    # training loop alone, then with back-to-back periodic challenges, then the false-reject run
    loaded_shape = profile.periodic.shape if profile is not None else sizes["reject-size"]
    ctx = mp.get_context("spawn")
    progress = ctx.Queue()
    phase = args.phase_s
    t0 = time.time()
    trainer = ctx.Process(target=training_loop, args=(t0 + 3 * phase + 3600, progress, args.dry_run))
    trainer.start()
    time.sleep(phase + args.warmup_s)  # warm-up and the baseline phase
    base_end = time.time()
    challenge_runs, during_start = [], time.time()
    while time.time() < during_start + phase:
        challenge_runs.append(one_challenge(solve, loaded_shape, gpu, "under-load"))
    during_end = time.time()
    # An honest challenge is rejected if it does not verify or if, under load, it misses the
    # deadline the protocol would set from this GPU's unloaded time for the same size.
    reject_deadline_ms = deadline_ms(int(median([r["solve_ms"] for r in report["solve_times"]["reject-size"]["runs"]])) + 1)
    rejects, under_load_ms = [], []
    for i in range(args.reject_challenges):
        run = one_challenge(solve, sizes["reject-size"], gpu, f"reject-{i}")
        under_load_ms.append(run["solve_ms"])
        if not run["ok"] or run["solve_ms"] > reject_deadline_ms:
            rejects.append(run)
    trainer.terminate()
    trainer.join(10)
    points = []
    while not progress.empty():
        points.append(progress.get())
    base = rate(points, t0 + args.warmup_s, base_end)
    during = rate(points, during_start, during_end)
    solve_ms = sorted(r["solve_ms"] for r in challenge_runs)[len(challenge_runs) // 2] if challenge_runs else None
    slowdown = (1 - during / base) if base and base == base and during == during else None
    report["training_slowdown"] = {
        "baseline_iterations_per_s": base, "with_challenges_iterations_per_s": during,
        "slowdown_during_challenges_pct": None if slowdown is None else round(100 * slowdown, 2),
        "challenges_during_phase": len(challenge_runs), "challenge_solve_ms_median": solve_ms,
        "all_verified": all(r["ok"] for r in challenge_runs),
        "amortized_slowdown_pct_at_protocol_rate": (None if slowdown is None or solve_ms is None else
                                                     round(100 * slowdown * solve_ms / 1000 / MEAN_INTERVAL_S, 4)),
        "mean_interval_s": MEAN_INTERVAL_S}
    report["false_rejects"] = {"challenges": args.reject_challenges, "rejected": len(rejects),
                               "shape": "reject-size", "with_training_loop": True, "deadline_ms": reject_deadline_ms,
                               "solve_ms_max_under_load": max(under_load_ms) if under_load_ms else None,
                               "details": rejects[:5]}
    log(f"training slowdown while challenges run: {report['training_slowdown']['slowdown_during_challenges_pct']} %")
    log(f"false rejects: {len(rejects)} of {args.reject_challenges}")
    if profile is not None:
        start = sorted(r["solve_ms"] for r in report["solve_times"]["production-start"]["runs"])[-1]
        periodic = sorted(r["solve_ms"] for r in report["solve_times"]["production-periodic"]["runs"])[-1]
        report["table_row"] = (f'measured_solve_ms=({int(start) + 1}, {int(periodic) + 1})  # {gpu["name"]}, '
                               f'tools/gpu_check.sh {report["started_utc"]}')
        log("for oracle/proof/params.py PERFORMANCE: " + report["table_row"])
    table = deadline_table(report, profile)
    (out / "deadline_table.md").write_text(f"{gpu['name']} ({gpu['uuid']}), {report['started_utc']}\n\n" + table)
    log("deadline table (docs/protocol.md, 'Deadlines per model'):\n" + table)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    log(f"wrote {out / 'gpu_check.json'}")


if __name__ == "__main__":
    main()
