#!/usr/bin/env python
"""Capacity soak: one node ingests, meters and signs for ``--gpus`` GPUs at the agent's defaults.

One real node process (``python -m oracle.node.server``, the node's own server and limits) on
loopback, with ``--gpus / --gpus-per-rental`` rentals registered. This process plays:

- every rental's agent, at ``AgentConfig``'s defaults (``sample_hz`` 1, ``batch_samples`` 10: one
  batch of 10 samples per GPU every 10 s per rental), each rental's batches signed with its own
  hash chain, samples from the real H100 trace (``oracle.node.testing.looped_trace`` data, each GPU
  its own energy counter), stamped with real time, posted to ``/v1/rentals/{id}/batches``;
- the node's own aggregator: every ``--settle-interval-s`` (the node's default, 60 s) it asks
  ``GET /v1/rentals/{id}/report`` for every rental, signed as a peer with the node key, then
  ``POST /v1/batch-signatures`` in chunks of 256 (what a settlement round asks of each node).

It reports, for the whole soak and per minute: batches/s done against the target, batch latency
p50/p99, report latency p50/p99, batch-signature latency p99, the node process's CPU (% of one core,
from /proc) and its RSS (start, end, max; sampled every 5 s), and every non-200 answer.

Bounded: ``--minutes`` of wall time (the loops stop there), loopback only, one node process.
The load generator shares the machine's cores with the node; the node's own CPU is measured apart.

Usage: .venv/bin/python tools/bench_capacity.py [--gpus 10000] [--gpus-per-rental 8] [--minutes 10]
       [--settle-interval-s 60] [--concurrency 32] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from oracle.agent.config import AgentConfig  # noqa: E402
from oracle.node.peerauth import PeerAuth  # noqa: E402
from oracle.node.testing import (  # noqa: E402
    AGENT_KEY, H100, NODE_KEY, TEST_CHAIN_ID, TEST_MARKET, NodeProcess, looped_trace,
)
from oracle.telemetry.batches import GENESIS_PREV_HASH, TelemetryBatch, address_of, keccak  # noqa: E402
from oracle.telemetry.samples import GpuInfo, Sample  # noqa: E402

DEFAULT_BATCH_SAMPLES = AgentConfig.model_fields["batch_samples"].default
DEFAULT_SAMPLE_HZ = AgentConfig.model_fields["sample_hz"].default


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class RentalAgent:
    """One rental's agent: its hash chain and where it is in the trace."""

    rental_id: int
    gpus: tuple[GpuInfo, ...]
    offset_s: float
    key: bytes = AGENT_KEY  # each rental's own agent key (nodes limit each agent on its own)
    next_seq: int = 0
    prev_hash: bytes = GENESIS_PREV_HASH
    energy: list[int] = field(default_factory=list)
    cursor: int = 0

    @property
    def address(self) -> str:
        return address_of(self.key)

    def next_batch(self, now_ms: int, trace: list[Sample], ticks: int, period_ms: int) -> bytes:
        samples = []
        for tick in range(ticks):
            t_ms = now_ms - (ticks - 1 - tick) * period_ms
            for gpu in self.gpus:
                s = trace[(self.cursor + 7 * gpu.index) % len(trace)]
                self.energy[gpu.index] += s.power_mw * period_ms // 1000
                samples.append(Sample(gpu.index, t_ms, self.energy[gpu.index], s.power_mw, s.util_gpu_pct,
                                      s.util_mem_pct, s.mem_used_mib, s.temp_c))
            self.cursor += 1
        batch = TelemetryBatch(self.rental_id, self.address, self.next_seq, self.prev_hash, self.gpus,
                               tuple(samples), chain_id=TEST_CHAIN_ID, market=TEST_MARKET).signed(self.key)
        self.next_seq += 1
        self.prev_hash = batch.batch_hash()
        return batch.to_wire_bytes()


@dataclass
class Tally:
    batch_latency_s: list[float] = field(default_factory=list)
    report_latency_s: list[float] = field(default_factory=list)
    signature_latency_s: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    batches_done: int = 0
    batches_due: int = 0
    reports_done: int = 0
    per_minute: list[dict] = field(default_factory=list)

    def count(self, what: str, response: httpx.Response) -> None:
        if response.status_code != 200:
            reason = ""
            try:
                reason = response.json().get("reason", "")
            except ValueError:
                pass
            key = f"{what} {response.status_code} {reason}".strip()
            self.statuses[key] = self.statuses.get(key, 0) + 1


async def run_agents(url: str, agents: list[RentalAgent], trace: list[Sample], args, tally: Tally,
                     stop_at: float) -> None:
    interval_s = args.batch_samples / args.sample_hz
    period_ms = round(1000 / args.sample_hz)
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    semaphore = asyncio.Semaphore(args.concurrency)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        async def send(agent: RentalAgent, body: bytes) -> None:
            # Like the agent's delivery worker: a dropped connection, a 429 or a 5xx is retried
            # (the next batch of the rental is 10 s away, so the chain stays in order).
            for attempt in range(5):
                async with semaphore:
                    t0 = time.perf_counter()
                    try:
                        response = await client.post(f"/v1/rentals/{agent.rental_id}/batches", content=body,
                                                     headers={"content-type": "application/json"})
                    except httpx.HTTPError as exc:
                        tally.statuses[f"batch {type(exc).__name__}"] = tally.statuses.get(
                            f"batch {type(exc).__name__}", 0) + 1
                        response = None
                    tally.batch_latency_s.append(time.perf_counter() - t0)
                if response is not None:
                    tally.count("batch", response)
                    if response.status_code == 200:
                        tally.batches_done += 1
                        return
                    if response.status_code != 429 and response.status_code < 500:
                        return
                await asyncio.sleep(0.2 * 2 ** attempt)

        pending: set[asyncio.Task] = set()
        next_due = [started + agent.offset_s + interval_s for agent in agents]
        while time.monotonic() < stop_at:
            now = time.monotonic()
            now_ms = time.time_ns() // 1_000_000
            for i, agent in enumerate(agents):
                if next_due[i] <= now:
                    next_due[i] += interval_s
                    tally.batches_due += 1
                    task = asyncio.create_task(send(agent, agent.next_batch(now_ms, trace, args.batch_samples,
                                                                            period_ms)))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
            await asyncio.sleep(0.05)
        if pending:
            await asyncio.wait(pending, timeout=30)
            for task in pending:
                task.cancel()


async def run_aggregator(url: str, rentals: list[int], args, tally: Tally, stop_at: float) -> None:
    auth = PeerAuth(NODE_KEY, TEST_CHAIN_ID, TEST_MARKET)
    async with httpx.AsyncClient(base_url=url, timeout=60, auth=auth,
                                 limits=httpx.Limits(max_connections=4)) as client:
        await asyncio.sleep(min(args.settle_interval_s, 15))  # the first batches arrive
        while time.monotonic() < stop_at:
            round_start = time.monotonic()
            refs = []
            for rental_id in rentals:
                if time.monotonic() >= stop_at:
                    break
                t0 = time.perf_counter()
                try:
                    response = await client.get(f"/v1/rentals/{rental_id}/report")
                except httpx.HTTPError as exc:  # a kept-alive connection closed under us: next rental
                    tally.statuses[f"report {type(exc).__name__}"] = tally.statuses.get(
                        f"report {type(exc).__name__}", 0) + 1
                    continue
                tally.report_latency_s.append(time.perf_counter() - t0)
                tally.count("report", response)
                if response.status_code == 200:
                    tally.reports_done += 1
                    answer = response.json()
                    refs.append({"rental_id": rental_id, "sequence": answer["sequence"], "digest": answer["digest"]})
            for start in range(0, len(refs), 256):
                t0 = time.perf_counter()
                try:
                    response = await client.post("/v1/batch-signatures", json={"reports": refs[start:start + 256]})
                except httpx.HTTPError as exc:
                    tally.statuses[f"batch-signatures {type(exc).__name__}"] = tally.statuses.get(
                        f"batch-signatures {type(exc).__name__}", 0) + 1
                    continue
                tally.signature_latency_s.append(time.perf_counter() - t0)
                tally.count("batch-signatures", response)
            left = args.settle_interval_s - (time.monotonic() - round_start)
            if left > 0:
                await asyncio.sleep(min(left, max(0.0, stop_at - time.monotonic())))


async def watch(pid: int, tally: Tally, stop_at: float, samples: list[tuple[float, float, float]]) -> None:
    last_minute = time.monotonic()
    last_cpu = process_cpu_s(pid)
    last_batches = 0
    while time.monotonic() < stop_at:
        await asyncio.sleep(5)
        samples.append((time.monotonic(), process_cpu_s(pid), rss_mib(pid)))
        if time.monotonic() - last_minute >= 60:
            cpu = process_cpu_s(pid)
            elapsed = time.monotonic() - last_minute
            tally.per_minute.append({
                "batches_per_s": round((tally.batches_done - last_batches) / elapsed, 1),
                "node_cpu_pct": round(100 * (cpu - last_cpu) / elapsed, 1),
                "node_rss_mib": round(rss_mib(pid), 1),
            })
            print(f"  minute {len(tally.per_minute)}: {tally.per_minute[-1]}", file=sys.stderr, flush=True)
            last_minute, last_cpu, last_batches = time.monotonic(), cpu, tally.batches_done


async def soak(args, node: NodeProcess, agents: list[RentalAgent], trace: list[Sample]) -> dict:
    tally = Tally()
    samples: list[tuple[float, float, float]] = []
    pid = node.proc.pid
    cpu0, t0, rss0 = process_cpu_s(pid), time.monotonic(), rss_mib(pid)
    stop_at = t0 + args.minutes * 60
    await asyncio.gather(
        run_agents(node.url, agents, trace, args, tally, stop_at),
        run_aggregator(node.url, [a.rental_id for a in agents], args, tally, stop_at),
        watch(pid, tally, stop_at, samples),
    )
    elapsed = time.monotonic() - t0
    cpu = process_cpu_s(pid) - cpu0
    rss = [rss0] + [s[2] for s in samples]
    target = len(agents) * args.sample_hz / args.batch_samples
    return {
        "gpus": len(agents) * args.gpus_per_rental,
        "rentals": len(agents),
        "minutes": round(elapsed / 60, 2),
        "target_batches_per_s": round(target, 1),
        "batches_per_s": round(tally.batches_done / elapsed, 1),
        "batches": tally.batches_done,
        "batches_due": tally.batches_due,  # what the agents had to send in the time: done/due = kept up
        "batch_latency_p50_ms": round(1000 * percentile(tally.batch_latency_s, 0.5), 1),
        "batch_latency_p99_ms": round(1000 * percentile(tally.batch_latency_s, 0.99), 1),
        "reports": tally.reports_done,
        "report_latency_p50_ms": round(1000 * percentile(tally.report_latency_s, 0.5), 1),
        "report_latency_p99_ms": round(1000 * percentile(tally.report_latency_s, 0.99), 1),
        "batch_signature_latency_p99_ms": round(1000 * percentile(tally.signature_latency_s, 0.99), 1),
        "node_cpu_pct_of_one_core": round(100 * cpu / elapsed, 1),
        # all of the node's CPU (ingest, metering, signing, batch signatures) per batch it accepted,
        # and what the target rate would take at that cost: less sensitive to a loaded machine
        "node_cpu_ms_per_batch": round(1000 * cpu / max(1, tally.batches_done), 2),
        "projected_node_cores_at_target": round(cpu / max(1, tally.batches_done) * target, 2),
        "load_average_1m_end": round(os.getloadavg()[0], 1),
        "node_rss_mib_start": round(rss0, 1),
        "node_rss_mib_end": round(rss[-1], 1),
        "node_rss_mib_max": round(max(rss), 1),
        "refusals": tally.statuses,
        "per_minute": tally.per_minute,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, default=10_000)
    parser.add_argument("--gpus-per-rental", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--settle-interval-s", type=float, default=60.0)
    parser.add_argument("--batch-samples", type=int, default=DEFAULT_BATCH_SAMPLES,
                        help="samples per GPU per batch (the agent's default)")
    parser.add_argument("--sample-hz", type=float, default=DEFAULT_SAMPLE_HZ, help="(the agent's default)")
    parser.add_argument("--concurrency", type=int, default=128, help="connections the agents share")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args()
    if args.minutes <= 0 or args.minutes > 60:
        raise SystemExit("--minutes must be in (0, 60]")

    rentals = args.gpus // args.gpus_per_rental
    gpus = tuple(GpuInfo(i, f"GPU-{i:08d}-bench", H100.name, H100.power_limit_mw) for i in range(args.gpus_per_rental))
    trace = looped_trace(85)  # the H100 trace at 1 Hz
    interval_s = args.batch_samples / args.sample_hz
    agents = [RentalAgent(1 + i, gpus, offset_s=interval_s * i / rentals, key=keccak(b"bench-agent-%d" % i),
                          energy=[1_000_000] * len(gpus), cursor=i) for i in range(rentals)]
    start_ms = time.time_ns() // 1_000_000 - 60_000
    print(f"capacity soak: {rentals} rentals x {args.gpus_per_rental} GPUs, one batch of {args.batch_samples} "
          f"samples/GPU every {interval_s:g} s per rental, reports every {args.settle_interval_s:g} s, "
          f"{args.minutes:g} min; {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="gpurent-capacity-") as workdir:
        rentals_path = Path(workdir) / "rentals.json"
        env = {
            "GPURENT_NODE_DEV_MODE": "true",
            "GPURENT_NODE_PRIVATE_KEY": "0x" + NODE_KEY.hex(),
            "GPURENT_NODE_CHAIN_ID": str(TEST_CHAIN_ID),
            "GPURENT_NODE_MARKET_ADDRESS": TEST_MARKET,
            "GPURENT_NODE_DB_PATH": str(Path(workdir) / "node.sqlite3"),
            # Every agent shares this process's address here; in production each has its own.
            "GPURENT_NODE_IP_RATE_PER_S": "1e6", "GPURENT_NODE_IP_BURST": "1000000",
        }
        config = Path(workdir) / "node.json"
        config.write_text(json.dumps({"rentals": [
            {"rental_id": a.rental_id, "agent": a.address, "gpu_count": args.gpus_per_rental, "gpu_model": H100.name,
             "region": "bench", "grid_intensity_g_per_kwh": 400, "start_ms": start_ms} for a in agents]}))
        env["GPURENT_NODE_CONFIG"] = str(config)
        with NodeProcess(env, log_path=Path(workdir) / "node.log") as node:
            result = asyncio.run(soak(args, node, agents, trace))
        result["node_db_mib"] = round(sum(p.stat().st_size for p in Path(workdir).glob("node.sqlite3*")) / 2**20, 1)
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
