#!/usr/bin/env python
"""Capacity soak: one node ingests, meters and signs for ``--gpus`` GPUs at the agent's defaults.

One real node process (``python -m oracle.node.server``, the node's own server and limits) on
loopback, with ``--gpus / --gpus-per-rental`` rentals registered. Separate processes play:

- every rental's agent (``--senders`` processes, each owning every N-th rental), at
  ``AgentConfig``'s defaults (``sample_hz`` 1, ``batch_samples`` 10: one batch of 10 samples per GPU
  every 10 s per rental). Each rental has its own agent key and hash chain; samples come from the
  real H100 trace (each GPU its own energy counter) on the rental's own 1 Hz clock, so a batch
  sent late is late, never overlapping. A batch is built and signed (``TelemetryBatch``, the
  agent's own code) the moment its last sample's second has passed, then POSTed to
  ``/v1/rentals/{id}/batches`` over a pool of kept-alive HTTP/1.1 connections (a minimal
  client: the load generator must cost far less than the node it measures). Batches of one
  rental go in order; 429, 5xx and dropped connections are retried like the agent does;
- the node's own aggregator (one process): every ``--settle-interval-s`` (the node's default,
  60 s) it asks ``GET /v1/rentals/{id}/report`` for every rental, signed as a peer with the node
  key (4 at a time), then ``POST /v1/batch-signatures`` in chunks of 256.

This process watches: the node's CPU (% of one core, /proc) and RSS every 5 s, per-minute
figures, the load generator's own CPU, the machine's load average and idle share. It reports
batches/s against the target, batch and report latency p50/p99, the node's CPU per accepted batch
(independent of how loaded the machine is) and every non-200 answer.

Bounded: ``--minutes`` of wall time (the loops stop there), loopback only, one node process.

Usage: .venv/bin/python tools/bench_capacity.py [--gpus 10000] [--gpus-per-rental 8] [--minutes 10]
       [--settle-interval-s 60] [--senders 2] [--connections 16] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oracle.agent.config import AgentConfig  # noqa: E402
from oracle.node.testing import (  # noqa: E402
    H100, NODE_KEY, TEST_CHAIN_ID, TEST_MARKET, NodeProcess, dev_node_env, looped_trace,
)
from oracle.telemetry.batches import (  # noqa: E402
    GENESIS_PREV_HASH, TelemetryBatch, address_of, keccak, sign_batch_hash,
)
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


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def agent_key(index: int) -> bytes:
    return keccak(b"bench-agent-%d" % index)


# -- the agents ----------------------------------------------------------------------------------

@dataclass
class RentalAgent:
    """One rental's agent: its key, hash chain, own 1 Hz clock and place in the trace."""

    rental_id: int
    key: bytes
    gpus: tuple[GpuInfo, ...]
    first_ms: int  # t_ms of the rental's first sample
    energy: list[int]
    cursor: int
    next_seq: int = 0
    prev_hash: bytes = GENESIS_PREV_HASH
    lock: asyncio.Lock | None = None

    def __post_init__(self) -> None:
        self.agent = address_of(self.key)

    def batch_window(self, seq: int, ticks: int, period_ms: int) -> tuple[int, int]:
        """(first, last) t_ms of batch ``seq``."""
        first = self.first_ms + seq * ticks * period_ms
        return first, first + (ticks - 1) * period_ms

    def next_batch(self, trace: list[Sample], ticks: int, period_ms: int) -> bytes:
        """The agent's next batch, built and signed with the agent's code (``TelemetryBatch``)."""
        first, _ = self.batch_window(self.next_seq, ticks, period_ms)
        samples = []
        for tick in range(ticks):
            t_ms = first + tick * period_ms
            for gpu in self.gpus:
                s = trace[(self.cursor + 7 * gpu.index) % len(trace)]
                # Each GPU's own sensor noise (0-3 W below the trace): without it every GPU would
                # replay the same 85-s power sequence, which the node rightly flags as copied telemetry.
                power_mw = max(0, s.power_mw - (self.rental_id * 7919 + gpu.index * 104_729 + t_ms // 1000)
                               * 2_654_435_761 % 3001)
                self.energy[gpu.index] += power_mw * period_ms // 1000
                samples.append(Sample(gpu.index, t_ms, self.energy[gpu.index], power_mw, s.util_gpu_pct,
                                      s.util_mem_pct, s.mem_used_mib, s.temp_c))
            self.cursor += 1
        batch = TelemetryBatch(self.rental_id, self.agent, self.next_seq, self.prev_hash, self.gpus,
                               tuple(samples), chain_id=TEST_CHAIN_ID, market=TEST_MARKET)
        # TelemetryBatch.signed() with the key's address known (it re-derives it per call).
        body_hash = batch.batch_hash()
        signed = TelemetryBatch._from_checked(batch.rental_id, batch.agent, batch.batch_seq, batch.prev_hash,
                                              batch.gpus, batch.samples, sign_batch_hash(self.key, body_hash),
                                              TEST_CHAIN_ID, TEST_MARKET)
        self.next_seq += 1
        self.prev_hash = body_hash
        return signed.to_wire_bytes()


class Connection:
    """One kept-alive HTTP/1.1 connection: POST a body, read the status and the answer."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        for attempt in (0, 1):  # the server may have closed an idle kept-alive connection
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                self.writer.write(b"POST %s HTTP/1.1\r\nhost: %s:%d\r\ncontent-type: application/json\r\n"
                                  b"content-length: %d\r\n\r\n" % (path.encode(), self.host.encode(), self.port,
                                                                   len(body)) + body)
                head = await self.reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length, close = 0, False
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        close = True
                answer = await self.reader.readexactly(length)
                if close:
                    self.close()
                return status, answer
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def sender_main(shard: int, args: argparse.Namespace, port: int, t0_ms: int, stop_at: float,
                accepted, results) -> None:
    """One load-generator process: the agents of rentals ``shard, shard + N, ...``."""
    os.setsid()  # its own session (scheduler autogroup), as agents on other machines would be
    tally: dict = {"batch_latency_s": [], "batch_delay_s": [], "statuses": {}, "done": 0, "due": 0,
                   "done_in_window": 0}
    asyncio.run(_send_loop(shard, args, port, t0_ms, stop_at, accepted, tally))
    tally["cpu_s"] = process_cpu_s(os.getpid())
    results.put(("sender", tally))


async def _send_loop(shard: int, args: argparse.Namespace, port: int, t0_ms: int, stop_at: float,
                     accepted, tally: dict) -> None:
    rentals = args.gpus // args.gpus_per_rental
    ticks, period_ms = args.batch_samples, round(1000 / args.sample_hz)
    interval_ms = ticks * period_ms
    gpus = tuple(GpuInfo(i, f"GPU-{i:08d}-bench", H100.name, H100.power_limit_mw) for i in range(args.gpus_per_rental))
    trace = looped_trace(85)  # the H100 trace at 1 Hz
    agents = [RentalAgent(1 + i, agent_key(i), gpus, t0_ms + interval_ms * i // rentals,
                          energy=[1_000_000] * len(gpus), cursor=i, lock=asyncio.Lock())
              for i in range(shard, rentals, args.senders)]
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(args.connections):
        pool.put_nowait(Connection("127.0.0.1", port))
    statuses = tally["statuses"]

    async def deliver(agent: RentalAgent, body: bytes, due_s: float) -> None:
        async with agent.lock:  # one rental's batches arrive in order, as its agent sends them
            for attempt in range(6):
                connection = await pool.get()
                t_send = time.perf_counter()
                try:
                    status, answer = await connection.post(f"/v1/rentals/{agent.rental_id}/batches", body)
                except (OSError, asyncio.IncompleteReadError) as exc:
                    status, answer = 0, type(exc).__name__.encode()
                finally:
                    pool.put_nowait(connection)
                tally["batch_latency_s"].append(time.perf_counter() - t_send)
                if status == 200:
                    tally["done"] += 1
                    if time.time() <= stop_at:
                        tally["done_in_window"] += 1
                    tally["batch_delay_s"].append(time.time() - due_s)
                    with accepted.get_lock():
                        accepted.value += 1
                    return
                reason = answer.decode(errors="replace")
                if status:
                    try:
                        reason = json.loads(answer).get("reason", "")
                    except ValueError:
                        pass
                key = f"batch {status} {reason}".strip()
                statuses[key] = statuses.get(key, 0) + 1
                if status and status != 429 and status < 500:
                    return
                await asyncio.sleep(0.2 * 2 ** attempt)

    due = [(a.batch_window(0, ticks, period_ms)[1] / 1000, n) for n, a in enumerate(agents)]
    heapq.heapify(due)
    pending: set[asyncio.Task] = set()
    while time.time() < stop_at:
        now = time.time()
        while due and due[0][0] <= now:
            due_s, n = heapq.heappop(due)
            agent = agents[n]
            tally["due"] += 1
            task = asyncio.create_task(deliver(agent, agent.next_batch(trace, ticks, period_ms), due_s))
            pending.add(task)
            task.add_done_callback(pending.discard)
            heapq.heappush(due, (agent.batch_window(agent.next_seq, ticks, period_ms)[1] / 1000, n))
        await asyncio.sleep(max(0.0, min(0.02, due[0][0] - time.time())) if due else 0.02)
    if pending:
        await asyncio.wait(pending, timeout=30)


# -- the node's aggregator ------------------------------------------------------------------------

def aggregator_main(args: argparse.Namespace, url: str, stop_at: float, results) -> None:
    os.setsid()
    tally: dict = {"report_latency_s": [], "signature_latency_s": [], "statuses": {}, "reports": 0, "rounds": 0}
    asyncio.run(_aggregate(args, url, stop_at, tally))
    tally["cpu_s"] = process_cpu_s(os.getpid())
    results.put(("aggregator", tally))


async def _aggregate(args: argparse.Namespace, url: str, stop_at: float, tally: dict) -> None:
    import httpx

    from oracle.node.peerauth import PeerAuth

    rentals = list(range(1, args.gpus // args.gpus_per_rental + 1))
    auth = PeerAuth(NODE_KEY, TEST_CHAIN_ID, TEST_MARKET)
    statuses = tally["statuses"]

    def count(what: str, response: httpx.Response | Exception) -> None:
        if isinstance(response, Exception):
            key = f"{what} {type(response).__name__}"
        elif response.status_code == 200:
            return
        else:
            try:
                key = f"{what} {response.status_code} {response.json().get('reason', '')}".strip()
            except ValueError:
                key = f"{what} {response.status_code}"
        statuses[key] = statuses.get(key, 0) + 1

    async with httpx.AsyncClient(base_url=url, timeout=60, auth=auth, limits=httpx.Limits(max_connections=4)) as client:
        await asyncio.sleep(min(args.settle_interval_s, 15))  # the first batches arrive
        while time.time() < stop_at:
            round_start = time.time()
            refs: list[dict] = []
            queue = list(reversed(rentals))

            async def worker() -> None:
                while queue and time.time() < stop_at:
                    rental_id = queue.pop()
                    t0 = time.perf_counter()
                    try:
                        response = await client.get(f"/v1/rentals/{rental_id}/report")
                    except httpx.HTTPError as exc:
                        count("report", exc)
                        continue
                    tally["report_latency_s"].append(time.perf_counter() - t0)
                    count("report", response)
                    if response.status_code == 200:
                        tally["reports"] += 1
                        answer = response.json()
                        refs.append({"rental_id": rental_id, "sequence": answer["sequence"],
                                     "digest": answer["digest"]})

            await asyncio.gather(*(worker() for _ in range(4)))
            for start in range(0, len(refs), 256):
                t0 = time.perf_counter()
                try:
                    response = await client.post("/v1/batch-signatures", json={"reports": refs[start:start + 256]})
                except httpx.HTTPError as exc:
                    count("batch-signatures", exc)
                    continue
                tally["signature_latency_s"].append(time.perf_counter() - t0)
                count("batch-signatures", response)
            tally["rounds"] += 1
            left = args.settle_interval_s - (time.time() - round_start)
            if left > 0:
                await asyncio.sleep(min(left, max(0.0, stop_at - time.time())))


# -- the soak -------------------------------------------------------------------------------------

def soak(args: argparse.Namespace, node: NodeProcess, t0_ms: int) -> dict:
    ctx = multiprocessing.get_context("fork")
    accepted = ctx.Value("q", 0)
    results = ctx.Queue()
    pid = node.proc.pid
    start = time.time()
    stop_at = start + args.minutes * 60
    children = [ctx.Process(target=sender_main, args=(k, args, node.port, t0_ms, stop_at, accepted, results))
                for k in range(args.senders)]
    children.append(ctx.Process(target=aggregator_main, args=(args, node.url, stop_at, results)))
    cpu0, rss0, load0, machine0 = process_cpu_s(pid), rss_mib(pid), os.getloadavg(), machine_cpu()
    for child in children:
        child.start()
    rss_samples, per_minute = [rss0], []
    last = (time.time(), cpu0, 0, machine0)
    while time.time() < stop_at:
        time.sleep(min(5.0, max(0.0, stop_at - time.time())))
        rss_samples.append(rss_mib(pid))
        now = time.time()
        if now - last[0] >= 60 or now >= stop_at:
            cpu, done, machine = process_cpu_s(pid), accepted.value, machine_cpu()
            elapsed = now - last[0]
            per_minute.append({
                "batches_per_s": round((done - last[2]) / elapsed, 1),
                "node_cpu_pct": round(100 * (cpu - last[1]) / elapsed, 1),
                "node_cpu_ms_per_batch": round(1000 * (cpu - last[1]) / max(1, done - last[2]), 2),
                "node_rss_mib": round(rss_samples[-1], 1),
                "machine_busy_pct": round(100 * (machine[0] - last[3][0]) / max(1, machine[1] - last[3][1]), 1),
                "load_average_1m": round(os.getloadavg()[0], 1),
            })
            print(f"  minute {len(per_minute)}: {per_minute[-1]}", file=sys.stderr, flush=True)
            last = (now, cpu, done, machine)
    tallies = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=30)
    elapsed = time.time() - start
    cpu, machine1 = process_cpu_s(pid) - cpu0, machine_cpu()
    senders = [t for kind, t in tallies if kind == "sender"]
    aggregator = next(t for kind, t in tallies if kind == "aggregator")
    batch_latency = [v for t in senders for v in t["batch_latency_s"]]
    batch_delay = [v for t in senders for v in t["batch_delay_s"]]
    done, due = sum(t["done"] for t in senders), sum(t["due"] for t in senders)
    done_in_window = sum(t["done_in_window"] for t in senders)
    refusals: dict[str, int] = dict(aggregator["statuses"])
    for t in senders:
        for key, n in t["statuses"].items():
            refusals[key] = refusals.get(key, 0) + n
    rentals = args.gpus // args.gpus_per_rental
    target = rentals * args.sample_hz / args.batch_samples
    generator_cpu = sum(t["cpu_s"] for t in senders)
    return {
        "gpus": rentals * args.gpus_per_rental,
        "rentals": rentals,
        "minutes": round(elapsed / 60, 2),
        "target_batches_per_s": round(target, 1),
        # accepted within the soak's --minutes (the batches due then, answered after, are not counted)
        "batches_per_s": round(done_in_window / (args.minutes * 60), 1),
        "batches": done,
        "batches_due": due,  # what the agents had to send in the time: done/due = kept up
        "batch_latency_p50_ms": round(1000 * percentile(batch_latency, 0.5), 1),
        "batch_latency_p99_ms": round(1000 * percentile(batch_latency, 0.99), 1),
        # from the moment the batch's last second had passed to the node's 200 (build, sign, queue, send)
        "batch_delivery_delay_p99_ms": round(1000 * percentile(batch_delay, 0.99), 1),
        "reports": aggregator["reports"],
        "report_rounds": aggregator["rounds"],
        "report_latency_p50_ms": round(1000 * percentile(aggregator["report_latency_s"], 0.5), 1),
        "report_latency_p99_ms": round(1000 * percentile(aggregator["report_latency_s"], 0.99), 1),
        "batch_signature_latency_p99_ms": round(1000 * percentile(aggregator["signature_latency_s"], 0.99), 1),
        "node_cpu_pct_of_one_core": round(100 * cpu / elapsed, 1),
        # all of the node's CPU (ingest, metering, signing, batch signatures) per batch it accepted:
        # what the machine's other load changes least
        "node_cpu_ms_per_batch": round(1000 * cpu / max(1, done), 2),
        "projected_node_cores_at_target": round(cpu / max(1, done) * target, 2),
        "load_generator_cpu_ms_per_batch": round(1000 * generator_cpu / max(1, done), 2),
        "aggregator_cpu_pct_of_one_core": round(100 * aggregator["cpu_s"] / elapsed, 1),
        "machine_busy_pct_all_cores": round(100 * (machine1[0] - machine0[0]) / max(1, machine1[1] - machine0[1]), 1),
        "load_average_1m_start": round(load0[0], 1),
        "load_average_1m_end": round(os.getloadavg()[0], 1),
        "node_rss_mib_start": round(rss0, 1),
        "node_rss_mib_after_1_min": round(rss_samples[min(12, len(rss_samples) - 1)], 1),
        "node_rss_mib_end": round(rss_samples[-1], 1),
        "node_rss_mib_max": round(max(rss_samples), 1),
        "refusals": refusals,
        "per_minute": per_minute,
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
    parser.add_argument("--senders", type=int, default=2, help="load-generator processes")
    parser.add_argument("--connections", type=int, default=16, help="kept-alive connections per sender")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args()
    if args.minutes <= 0 or args.minutes > 60:
        raise SystemExit("--minutes must be in (0, 60]")

    rentals = args.gpus // args.gpus_per_rental
    interval_s = args.batch_samples / args.sample_hz
    print(f"capacity soak: {rentals} rentals x {args.gpus_per_rental} GPUs, one batch of {args.batch_samples} "
          f"samples/GPU every {interval_s:g} s per rental, reports every {args.settle_interval_s:g} s, "
          f"{args.minutes:g} min, {args.senders} sender processes; {platform.python_implementation()} "
          f"{platform.python_version()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
          file=sys.stderr, flush=True)
    t0_ms = (int(time.time()) + 5) * 1000  # the agents' first samples: after the node is up
    with tempfile.TemporaryDirectory(prefix="gpurent-capacity-") as workdir:
        # Every agent shares this machine's address here; in production each has its own.
        env = dev_node_env(Path(workdir) / "node.sqlite3", ip_rate_per_s="1e6", ip_burst=1_000_000)
        config = Path(workdir) / "node.json"
        config.write_text(json.dumps({"rentals": [
            {"rental_id": 1 + i, "agent": address_of(agent_key(i)), "gpu_count": args.gpus_per_rental,
             "gpu_model": H100.name, "region": "bench", "grid_intensity_g_per_kwh": 400, "start_ms": t0_ms - 60_000}
            for i in range(rentals)]}))
        env["GPURENT_NODE_CONFIG"] = str(config)
        with NodeProcess(env, log_path=Path(workdir) / "node.log", new_session=True) as node:
            result = soak(args, node, t0_ms)
        result["node_db_mib"] = round(sum(p.stat().st_size for p in Path(workdir).glob("node.sqlite3*")) / 2**20, 1)
    result["command"] = "tools/bench_capacity.py " + " ".join(sys.argv[1:])
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
