"""Helpers for tests and benchmarks of the node: signed batches of a real trace, a node process.

Not used by the node itself. ``NodeProcess`` runs a real uvicorn server in a subprocess on
loopback, configured only through ``GPURENT_NODE_*`` environment variables (the same path an
operator uses), so crash tests can SIGKILL it and restart it on the same SQLite file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from oracle.chain.anvil import free_port
from oracle.telemetry.batches import GENESIS_PREV_HASH, TelemetryBatch, address_of
from oracle.telemetry.samples import GpuInfo, Sample, read_trace_csv

REPO_ROOT = Path(__file__).resolve().parents[2]
from oracle.traces import TRACE_A  # noqa: F401  (re-exported for the tests)
H100 = GpuInfo(index=0, uuid="GPU-5e1c0a3e-h100-trace-a", name="NVIDIA H100 80GB HBM3", power_limit_mw=700_000)

AGENT_KEY = bytes.fromhex("a1" * 32)
#: The deployment the tests' batches are signed for (anvil's chain id; a market address of digits
#: only, so its EIP-55 spelling is itself).
TEST_CHAIN_ID = 31337
TEST_MARKET = "0x" + "42" * 20
NODE_KEY = bytes.fromhex("b2" * 32)


def chain_batches(
    agent_key: bytes,
    rental_id: int,
    samples: Sequence[Sample],
    gpus: Sequence[GpuInfo] = (H100,),
    samples_per_batch: int = 10,
    first_seq: int = 0,
    prev_hash: bytes = GENESIS_PREV_HASH,
    chain_id: int = TEST_CHAIN_ID,
    market: str = TEST_MARKET,
) -> list[TelemetryBatch]:
    """Split ``samples`` (in wire order) into signed, hash-chained batches."""
    agent = address_of(agent_key)
    batches = []
    for seq, start in enumerate(range(0, len(samples), samples_per_batch), start=first_seq):
        batch = TelemetryBatch(rental_id, agent, seq, prev_hash, tuple(gpus),
                               tuple(samples[start:start + samples_per_batch]),
                               chain_id=chain_id, market=market).signed(agent_key)
        prev_hash = batch.batch_hash()
        batches.append(batch)
    return batches


def shifted(samples: Iterable[Sample], end_ms: int) -> list[Sample]:
    """The samples moved in time so that the last one is at ``end_ms`` (for freshness checks)."""
    samples = list(samples)
    offset = end_ms - samples[-1].t_ms
    return [replace(sample, t_ms=sample.t_ms + offset) for sample in samples]


def trace_samples(path: Path = TRACE_A) -> list[Sample]:
    return read_trace_csv(path)


def looped_trace(seconds: int, gpus: int = 1, end_ms: int | None = None, path: Path = TRACE_A,
                 period_ms: int = 1000) -> list[Sample]:
    """``seconds`` samples per GPU of real telemetry, one per ``period_ms``, in wire order, ending at
    ``end_ms``: the trace subsampled and repeated back to back. Each GPU's energy counter keeps
    rising across repeats (the wrap adds the power times the period); GPU ``g`` starts ``7 g``
    samples into the trace, so the GPUs differ."""
    from oracle.telemetry.sources.replay import subsample

    base = subsample(read_trace_csv(path), period_ms)
    end_ms = end_ms if end_ms is not None else base[-1].t_ms
    start_ms = end_ms - (seconds - 1) * period_ms
    out = []
    for gpu in range(gpus):
        energy = base[0].energy_mj
        previous = None
        for i in range(seconds):
            s = base[(i + 7 * gpu) % len(base)]
            if previous is not None:
                step = s.energy_mj - previous.energy_mj
                energy += step if step >= 0 else s.power_mw * period_ms // 1000
            previous = s
            out.append(Sample(gpu, start_ms + i * period_ms, energy, s.power_mw, s.util_gpu_pct,
                              s.util_mem_pct, s.mem_used_mib, s.temp_c))
    return sorted(out, key=lambda s: (s.t_ms, s.gpu))


def stored_bytes_per_gpu_hour(workdir: Path, gpus: int = 1, seconds: int = 3600, path: Path = TRACE_A,
                             batch_samples: int = 10, end_ms: int = 1_900_000_000_000) -> tuple[float, float]:
    """(bytes the node's SQLite file grows by, bytes of the batches' wire JSON), per GPU-hour, for
    ``seconds`` of the trace at 1 Hz on ``gpus`` GPUs in batches of ``batch_samples`` per GPU
    ingested through the node's real path (verify, encode, append) into a fresh database."""
    import os

    from oracle.node.attestor import Attestor
    from oracle.node.rentals import InMemoryRentalRegistry, Rental
    from oracle.node.storage import NodeStorage

    infos = tuple(GpuInfo(i, f"GPU-{i:08d}-h100", H100.name, H100.power_limit_mw) for i in range(gpus))
    batches = chain_batches(AGENT_KEY, 1, looped_trace(seconds, gpus, end_ms, path), gpus=infos,
                            samples_per_batch=batch_samples * gpus)
    sizes = []
    for name, chain in (("empty", []), ("full", batches)):
        db = Path(workdir) / f"storage-{name}-{Path(path).stem}-{gpus}-{os.getpid()}.sqlite3"
        storage = NodeStorage(db)
        attestor = Attestor(storage=storage, registry=InMemoryRentalRegistry(
            [Rental(1, address_of(AGENT_KEY), gpus, "", 300, 0, gpu_model=H100.name)]), node_key=NODE_KEY, chain_id=TEST_CHAIN_ID,
            market_address=TEST_MARKET, signer_set_version=1, clock=lambda: end_ms)
        for batch in chain:
            if attestor.ingest(batch.to_wire_bytes()).status != "accepted":
                raise AssertionError("a batch was not accepted")
        storage._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        sizes.append(os.path.getsize(db))
        storage.close()
    gpu_hours = gpus * seconds / 3600
    return (sizes[1] - sizes[0]) / gpu_hours, sum(len(b.to_wire_bytes()) for b in batches) / gpu_hours


def rental_row(rental_id: int, agent: str, start_ms: int, grid_intensity_g_per_kwh: int = 400,
               gpu_count: int = 1, region: str = "test") -> dict[str, object]:
    """One static rental of a node's settings (``rentals``)."""
    return {"rental_id": rental_id, "agent": agent, "gpu_count": gpu_count, "region": region,
            "grid_intensity_g_per_kwh": grid_intensity_g_per_kwh, "start_ms": start_ms}


def rental_env(rental_id: int, agent: str, start_ms: int, grid_intensity_g_per_kwh: int = 400,
               gpu_count: int = 1, region: str = "test") -> str:
    """``GPURENT_NODE_RENTALS`` of one rental (:func:`rental_row` as JSON)."""
    import json

    return json.dumps([rental_row(rental_id, agent, start_ms, grid_intensity_g_per_kwh, gpu_count, region)])


@contextmanager
def in_process_node(db_path: Path | str, rentals: Iterable[Mapping[str, object]], now_ms: int,
                    **settings: object) -> Iterator[tuple[object, object]]:
    """(TestClient, app) of a dev-mode node app in this process whose clock stands at ``now_ms``,
    metering ``rentals`` (:func:`rental_row`); each keyword is one more node setting."""
    from fastapi.testclient import TestClient

    from oracle.node.app import create_app
    from oracle.node.settings import NodeSettings

    node_settings = NodeSettings(dev_mode=True, private_key="0x" + NODE_KEY.hex(), chain_id=TEST_CHAIN_ID,
                                 market_address=TEST_MARKET, db_path=Path(db_path), rentals=list(rentals),
                                 **settings)
    app = create_app(node_settings, clock=lambda: now_ms)
    with TestClient(app) as client:
        yield client, app


def post_batches(client: object, batches: Iterable[TelemetryBatch]) -> None:
    """POST each batch to its rental's ingest route; every one must be accepted (200)."""
    for batch in batches:
        response = client.post(f"/v1/rentals/{batch.rental_id}/batches", content=batch.to_wire_bytes())
        assert response.status_code == 200, response.text


def dev_node_env(db_path: Path | str, rentals: str | None = None, *, key: bytes = NODE_KEY,
                 chain_id: int = TEST_CHAIN_ID, market: str = TEST_MARKET, **settings: object) -> dict[str, str]:
    """The environment of a dev-mode node (plaintext key) on ``db_path`` that meters ``rentals``
    (:func:`rental_env`); each keyword is one more setting (``fault="kill_after_record"`` is
    ``GPURENT_NODE_FAULT``), ``None`` leaves it out. The one spelling of a test node's env."""
    env = {
        "GPURENT_NODE_DEV_MODE": "true",
        "GPURENT_NODE_PRIVATE_KEY": "0x" + key.hex(),
        "GPURENT_NODE_CHAIN_ID": str(chain_id),
        "GPURENT_NODE_MARKET_ADDRESS": market,
        "GPURENT_NODE_DB_PATH": str(db_path),
    }
    if rentals is not None:
        env["GPURENT_NODE_RENTALS"] = rentals
    env.update({f"GPURENT_NODE_{name.upper()}": str(value) for name, value in settings.items() if value is not None})
    return env


def challenge_network_env(index: int, keys: list[str], urls: list[str], tmp: Path, rentals: str, beacon_url: str,
                          *, market: str, liar: int | None = 2) -> dict[str, str]:
    """Node ``index`` of a proof-of-GPU test network: dev challenges drawn from ``beacon_url``'s
    blocks, a quorum of 2, the other ``urls`` as peers, and node ``liar`` lying about every verdict.
    Every agent, node and test shares 127.0.0.1 and polls 10x faster than in production."""
    return dev_node_env(Path(tmp) / f"node{index}.sqlite3", rentals, key=bytes.fromhex(keys[index]),
                        chain_id=31337, market=market, challenges="dev", beacon_rpc_url=beacon_url,
                        challenge_quorum=2, challenge_poll_interval_s=0.2,
                        peers=",".join(u for u in urls if u != urls[index]), report_rate_per_s=2000,
                        report_burst=10000, fault="lie_verdicts" if index == liar else None)


@contextmanager
def challenge_network(tmp: Path, rentals: str, keys: list[str], *, market: str) -> Iterator[tuple[Any, list[str]]]:
    """A fresh anvil (its blocks are the beacons) and one node process per key
    (:func:`challenge_network_env`): yields (chain, node URLs); stops them all on the way out."""
    from oracle.chain.anvil import Anvil

    with Anvil() as chain:
        ports = [free_port() for _ in keys]
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        nodes: list[NodeProcess] = []
        try:
            for i, port in enumerate(ports):
                env = challenge_network_env(i, keys, urls, tmp, rentals, chain.url, market=market)
                nodes.append(NodeProcess(env, port=port).start(timeout_s=90))  # a loaded CI box is slow
            yield chain, urls
        finally:
            for node in nodes:
                node.stop()


class NodeProcess:
    """``python -m oracle.node.server --factory oracle.node.server:app_from_env`` on 127.0.0.1 (the
    node's own server: header timeout and connection limits).

    The one uvicorn-subprocess starter of the tests and tools: a subclass serves another app by
    setting ``app_factory`` (``module:function``, importable with the process's ``PYTHONPATH``).
    """

    app_factory = "oracle.node.server:app_from_env"

    def __init__(self, env: Mapping[str, str], port: int | None = None, log_path: Path | None = None,
                 new_session: bool = False) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("GPURENT_NODE_")}
        self._env.update(env)
        self._env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + self._env.get("PYTHONPATH", "")
        self._log_path = log_path
        # Its own session: the scheduler's autogroup then treats the node as the separate service
        # it is in production, not as part of the process that started it (tools/bench_capacity.py).
        self._new_session = new_session
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, timeout_s: float = 30.0) -> "NodeProcess":
        import httpx

        self._log = open(self._log_path, "a+b") if self._log_path else tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "oracle.node.server", "--factory", self.app_factory,
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            env=self._env, stdout=self._log, stderr=subprocess.STDOUT, cwd=str(REPO_ROOT),
            start_new_session=self._new_session,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited with {self.proc.returncode} before serving: {self.output()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"node did not answer /healthz within {timeout_s} s")

    def wait(self, timeout_s: float = 10.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout_s)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def output(self) -> str:
        """What the node wrote to stdout and stderr so far."""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def __enter__(self) -> "NodeProcess":
        # ``with NodeProcess(env).start(timeout_s=90) as node`` must not start a second process
        # (the first one would be left running, unowned).
        if self.proc is not None and self.proc.poll() is None:
            return self
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
