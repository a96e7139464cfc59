#!/usr/bin/env python
"""Agent CPU time per GPU at 1 Hz sampling, on the replay source.

For each GPU count, the agent replays ``--seconds`` of the real H100 trace (subsampled to the
agent's 1 Hz) on every GPU, with its clock injected so that the simulated seconds pass as fast
as the CPU allows. The whole process's CPU time (``time.process_time``: user + system, all
threads) over the run is divided by GPUs x simulated seconds: the CPU the agent spends per GPU
per real second of sampling. Everything the agent does is included: reading the source,
batching, canonical JSON, keccak, the coincurve signature, the SQLite spool (fsynced commits),
and with ``--nodes N`` the HTTP delivery to N nodes (tiny servers in a child process, so their
CPU is not counted) including the spool bookkeeping of each delivery.

Not included: NVML itself. On the H100 the trace was captured on, one energy-counter read cost
3.9 ms of wall time and power/utilization/memory reads about 10 us together
(``shared/telemetry/h100_trace_a.json``), which a live agent adds per GPU per second.

    .venv/bin/python tools/bench_agent.py                       # 1 and 8 GPUs, 0 and 3 nodes
    .venv/bin/python tools/bench_agent.py --gpus 1,2,4,8 --seconds 120 --repeat 5
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from oracle.agent import Agent, Backoff, Spool  # noqa: E402
from oracle.node.testing import TEST_CHAIN_ID, TEST_MARKET  # noqa: E402
from oracle.telemetry.sources import MultiSource, ReplaySource  # noqa: E402

from oracle.traces import TRACE_A as DEFAULT_TRACE  # noqa: E402
BENCH_KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")

NODE_SERVERS = textwrap.dedent(
    """
    import sys, threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Ok(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def do_POST(self):
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
        def log_message(self, *a):
            pass

    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Ok) for _ in range(int(sys.argv[1]))]
    print(" ".join(str(s.server_address[1]) for s in servers), flush=True)
    for s in servers[1:]:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    servers[0].serve_forever()
    """
)


class FakeClock:
    def __init__(self) -> None:
        self.ms = time.time_ns() // 1_000_000

    def __call__(self) -> int:
        return self.ms

    def sleep(self, seconds: float) -> None:
        self.ms += round(seconds * 1000)


class Timed:
    """Wraps a callable and accumulates the CPU time its (calling) thread spends in it."""

    def __init__(self, fn):
        self.fn = fn
        self.cpu_s = 0.0

    def __call__(self, *args, **kwargs):
        t0 = time.thread_time()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.cpu_s += time.thread_time() - t0


def run_once(trace: Path, gpus: int, seconds: int, batch_samples: int, node_urls: list[str],
             workdir: Path) -> dict:
    clock = FakeClock()
    source = MultiSource(
        [ReplaySource(trace, speed=1, gpu=i, period_ms=1000, clock_ms=clock) for i in range(gpus)]
    )
    spool = Spool(workdir / f"spool-{gpus}-{len(node_urls)}-{time.monotonic_ns()}.db")
    agent = Agent(
        source=source, spool=spool, private_key=BENCH_KEY, rental_id=1, chain_id=TEST_CHAIN_ID, market=TEST_MARKET,
        nodes=node_urls or ["http://127.0.0.1:9"], sample_hz=1, batch_samples=batch_samples,
        clock_ms=clock, sleep=clock.sleep, deliver=bool(node_urls),
        backoff_factory=lambda: Backoff(0.05, 0.5), drain_timeout_s=60, idle_poll_s=0.2,
    )
    read = Timed(source.read)
    source.read = read  # type: ignore[method-assign]
    cut = Timed(agent._cut)  # build, sort, canonical JSON, keccak, sign, spool (fsync)
    agent._cut = cut  # type: ignore[method-assign]
    wall0, cpu0 = time.perf_counter(), time.process_time()
    stats = agent.run(max_ticks=seconds)
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    left = spool.pending_count() if node_urls else 0
    spool.close()
    assert stats.samples == gpus * seconds, stats
    return {
        "cpu_s": cpu,
        "wall_s": wall,
        "read_s": read.cpu_s,
        "cut_s": cut.cpu_s,
        "batches": stats.batches,
        "undelivered": left,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    parser.add_argument("--gpus", default="1,8", help="comma-separated GPU counts")
    parser.add_argument("--nodes", default="0,3", help="comma-separated node counts (0: spool only)")
    parser.add_argument("--seconds", type=int, default=60, help="simulated seconds at 1 Hz")
    parser.add_argument("--batch-samples", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the median is shown")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.seconds > 85:
        parser.error("the trace holds 85 s at 1 Hz; use --seconds 85 or less")

    gpu_counts = [int(g) for g in args.gpus.split(",")]
    node_counts = [int(n) for n in args.nodes.split(",")]
    servers = None
    ports: list[str] = []
    if max(node_counts) > 0:
        servers = subprocess.Popen(
            [sys.executable, "-c", NODE_SERVERS, str(max(node_counts))],
            stdout=subprocess.PIPE, text=True,
        )
        ports = servers.stdout.readline().split()  # type: ignore[union-attr]

    print(f"agent CPU per GPU at 1 Hz: replay of {args.trace.name}, {args.seconds} simulated s, "
          f"batches of {args.batch_samples} samples/GPU, median of {args.repeat} runs")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load avg {os.getloadavg()[0]:.2f}")
    header = (f"{'GPUs':>4} {'nodes':>5} {'batches':>7} {'CPU ms/GPU/s':>13} {'% of a core/GPU':>16}"
              f" {'read':>6} {'cut':>10} {'wall s':>7}")
    print(header)
    print("-" * len(header))
    try:
        with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
            for nodes in node_counts:
                urls = [f"http://127.0.0.1:{p}" for p in ports[:nodes]]
                for gpus in gpu_counts:
                    runs = [run_once(args.trace, gpus, args.seconds, args.batch_samples, urls,
                                     Path(tmp)) for _ in range(args.repeat)]
                    run = sorted(runs, key=lambda r: r["cpu_s"])[len(runs) // 2]
                    gpu_seconds = gpus * args.seconds
                    per = run["cpu_s"] / gpu_seconds * 1000
                    print(f"{gpus:>4} {nodes:>5} {run['batches']:>7} {per:>13.3f} "
                          f"{per / 10:>15.4f}% "
                          f"{run['read_s'] / gpu_seconds * 1000:>6.3f} "
                          f"{run['cut_s'] / gpu_seconds * 1000:>10.3f} {run['wall_s']:>7.2f}"
                          + (f"  ({run['undelivered']} undelivered!)" if run["undelivered"] else ""))
                    spread = [r["cpu_s"] / gpu_seconds * 1000 for r in runs]
                    if len(spread) > 1 and statistics.pstdev(spread) > 0.2 * statistics.mean(spread):
                        print(f"{'':>10} noisy: {', '.join(f'{x:.3f}' for x in spread)}")
    finally:
        if servers is not None:
            servers.kill()
            servers.wait()
    print("CPU ms/GPU/s: whole process (all threads). read / cut: the sampling thread's CPU in"
          " source.read() / in cutting batches (canonical JSON, keccak, coincurve signature,"
          " SQLite spool with fsync); the rest is the loop and, with nodes, the delivery threads"
          " (httpx POST, spool bookkeeping)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
