"""The agent end to end against real HTTP servers on 127.0.0.1: outages, restarts, refusals,
and a SIGTERM of ``run_agent`` in its own process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from eth_account import Account

from oracle.agent import Agent, Backoff, DeliveryWorker, Spool, make_agent_config
from oracle.chain.anvil import free_port
from oracle.errors import BatchVerificationError, ConfigError
from oracle.keys import new_keystore
from oracle.node.testing import TEST_CHAIN_ID, TEST_MARKET
from oracle.telemetry.batches import GENESIS_PREV_HASH, TelemetryBatch
from oracle.telemetry.sources import ReplaySource, SimulatedSource
from shared_traces import REPO, TRACE_A

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
AGENT = Account.from_key(KEY).address


class FakeClock:
    """Wall clock in ms that only moves when the agent sleeps."""

    def __init__(self, ms: int = 1_900_000_000_000) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms

    def sleep(self, seconds: float) -> None:
        self.ms += round(seconds * 1000)


ACCEPT_BUT_LOSE_ANSWER = -1


class NodeServer:
    """A minimal oracle node: verifies signature and chain, records what it accepted.

    Answers 200 for the next batch of the chain, 409 (no reason) for one it already has, and
    409 with the real node's reason words for chain breaks;
    ``script`` can force answers for given batch_seq values (consumed in order);
    ``ACCEPT_BUT_LOSE_ANSWER`` stores the batch and answers 503, as when a reply is lost.
    """

    def __init__(self, port: int = 0) -> None:
        self.accepted: list[TelemetryBatch] = []
        self.posts: list[int] = []
        self.script: dict[int, list[int]] = {}
        self.lock = threading.Lock()
        node = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                answer = node.handle(self.path, body)
                status, reason = answer if isinstance(answer, tuple) else (answer, None)
                payload = json.dumps({"detail": "test node", "reason": reason}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def handle(self, path: str, body: bytes) -> int | tuple[int, str]:
        if not (path.startswith("/v1/rentals/") and path.endswith("/batches")):
            return 404
        try:
            batch = TelemetryBatch.from_wire_bytes(body)
            batch.verify_signature(expected_agent=AGENT)
        except BatchVerificationError:
            return 422, "schema"
        with self.lock:
            self.posts.append(batch.batch_seq)
            forced = self.script.get(batch.batch_seq)
            if forced:
                status = forced.pop(0)
                if status != ACCEPT_BUT_LOSE_ANSWER:
                    return status
                self._accept(batch)
                return 503
            return self._accept(batch)

    def _accept(self, batch: TelemetryBatch) -> int | tuple[int, str]:
        have = len(self.accepted)
        if batch.batch_seq < have:
            return 409 if self.accepted[batch.batch_seq] == batch else (409, "conflict")
        if batch.batch_seq > have:
            return 409, "sequence_gap"
        prev = self.accepted[-1].batch_hash() if self.accepted else GENESIS_PREV_HASH
        if batch.prev_hash != prev:
            return 409, "prev_hash"
        self.accepted.append(batch)
        return 200

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def fast_backoff() -> Backoff:
    return Backoff(initial_s=0.02, max_s=0.1, jitter=0)


def make_agent(spool, nodes, clock, source=None, **kw) -> Agent:
    source = source or ReplaySource(TRACE_A, speed=1, period_ms=1000, clock_ms=clock)
    kw.setdefault("drain_timeout_s", 15)
    return Agent(
        source=source, spool=spool, private_key=KEY, rental_id=7, nodes=nodes,
        chain_id=TEST_CHAIN_ID, market=TEST_MARKET, sample_hz=1, batch_samples=10, clock_ms=clock, sleep=clock.sleep,
        backoff_factory=fast_backoff, idle_poll_s=0.05, **kw,
    )


def assert_one_chain(batches: list[TelemetryBatch]) -> None:
    prev = GENESIS_PREV_HASH
    for seq, batch in enumerate(batches):
        assert (batch.batch_seq, batch.prev_hash) == (seq, prev)
        assert batch.recover_agent() == AGENT
        prev = batch.batch_hash()


def test_node_down_then_up_gets_every_batch_in_order_exactly_once(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    up = NodeServer()  # a second node that stays up all along
    clock = FakeClock()
    with Spool(tmp_path / "spool.db") as spool:
        agent = make_agent(spool, [url, up.url], clock)
        late: list[NodeServer] = []

        def start_node_after_failures() -> None:
            down_worker = agent.workers[0]
            deadline = time.monotonic() + 20
            while down_worker.stats.failures < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            late.append(NodeServer(port))

        starter = threading.Thread(target=start_node_after_failures)
        starter.start()
        stats = agent.run()
        starter.join()
        try:
            assert stats.batches == 9 and stats.samples == 86
            assert agent.workers[0].stats.failures >= 3
            for node in (late[0], up):
                assert [b.batch_seq for b in node.accepted] == list(range(9))
                assert node.posts == list(range(9))  # exactly once each: no duplicates
                assert_one_chain(node.accepted)
                assert sum(len(b.samples) for b in node.accepted) == 86
            assert spool.pending_count() == 0 and spool.stored_batches(7) == []
        finally:
            late[0].stop()
            up.stop()


def test_samples_reach_the_node_with_the_traces_integers(tmp_path):
    from oracle.telemetry.samples import read_trace_csv
    from oracle.telemetry.sources.replay import subsample

    node = NodeServer()
    clock = FakeClock()
    try:
        with Spool(tmp_path / "spool.db") as spool:
            make_agent(spool, [node.url], clock).run()
        received = [s for b in node.accepted for s in b.samples]
        expected = subsample(read_trace_csv(TRACE_A), 1000)
        assert [s.energy_mj for s in received] == [s.energy_mj for s in expected]
        assert [b.t_ms - a.t_ms for a, b in zip(received, received[1:])] == [
            b.t_ms - a.t_ms for a, b in zip(expected, expected[1:])]
    finally:
        node.stop()


def test_agent_restart_continues_the_chain_without_renumbering(tmp_path):
    node = NodeServer()
    clock = FakeClock()
    path = tmp_path / "spool.db"
    try:
        with Spool(path) as spool:
            first = make_agent(spool, [node.url], clock, deliver=False)
            first.run(max_ticks=35)  # 3 full batches, then the open one is spooled on exit
            assert first.next_seq == 4
        clock.ms += 1000
        with Spool(path) as spool:
            second = make_agent(spool, [node.url], clock)
            assert (second.next_seq, second.prev_hash) == (4, spool.chain_head(7).head_hash)
            second.run(max_ticks=20)
        assert [b.batch_seq for b in node.accepted] == list(range(6))
        assert node.posts == list(range(6))
        assert_one_chain(node.accepted)
        times = [s.t_ms for b in node.accepted for s in b.samples]
        assert times == sorted(times) and len(set(times)) == len(times)
    finally:
        node.stop()


def test_restart_with_another_agent_key_is_refused(tmp_path):
    clock = FakeClock()
    with Spool(tmp_path / "spool.db") as spool:
        make_agent(spool, ["http://127.0.0.1:9"], clock, deliver=False).run(max_ticks=10)
        with pytest.raises(ConfigError):
            Agent(source=SimulatedSource(clock_ms=clock), spool=spool,
                  private_key=bytes.fromhex("22" * 32), rental_id=7,
                  nodes=["http://127.0.0.1:9"], chain_id=TEST_CHAIN_ID, market=TEST_MARKET,
                  deliver=False)


def test_duplicate_answers_count_as_delivered_and_refusals_are_parked(tmp_path, caplog):
    node = NodeServer()
    # batch 1: stored but the answer is lost, so the retry gets 409 (duplicate);
    # batch 2: 503, then 404 (rental not known yet), then 422 "future", then accepted;
    # batch 3: refused for good with 422 and parked.
    node.script = {1: [ACCEPT_BUT_LOSE_ANSWER], 2: [503, (404, "unknown_rental"),
                                                    (422, "future")], 3: [(422, "schema")]}
    clock = FakeClock()
    try:
        with Spool(tmp_path / "spool.db") as spool:
            agent = make_agent(spool, [node.url], clock, drain_timeout_s=3)
            with caplog.at_level("ERROR", logger="oracle.agent.delivery"):
                agent.run(max_ticks=50)
            worker = agent.workers[0]
            assert worker.stats.duplicates == 1 and worker.stats.parked == 2
            assert node.posts == [0, 1, 1, 2, 2, 2, 2, 3, 4]
            assert [b.batch_seq for b in node.accepted] == [0, 1, 2]
            # batch 3 refused; batch 4 then fails this node's chain check (409 sequence_gap),
            # which is a refusal, not a duplicate: parked too, never counted as delivered. The
            # queue never blocks, and the spool keeps both for inspection and requeueing.
            assert [p[:2] for p in spool.parked(node.url)] == [(7, 3), (7, 4)]
            assert "REFUSED" in caplog.text
            assert spool.pending(node.url) == []
            assert "sequence_gap" in spool.parked(node.url)[1][2]
            # once the cause is fixed, requeueing delivers them in order
            node.script = {}
            assert spool.requeue_parked(node.url) == 2
            again = DeliveryWorker(node.url, spool, stop=threading.Event())
            while (item := spool.next_pending(node.url)) is not None:
                assert again.deliver_one(item) is None
            again.close()
            assert [b.batch_seq for b in node.accepted] == [0, 1, 2, 3, 4]
            assert spool.pending(node.url) == [] and spool.parked(node.url) == []
    finally:
        node.stop()


RUN_AGENT = textwrap.dedent(
    """
    import logging, sys
    sys.path.insert(0, sys.argv[2])
    logging.basicConfig(level=logging.INFO)
    from oracle.agent import load_agent_config, run_agent
    sys.exit(run_agent(load_agent_config(sys.argv[1])))
    """
)


def test_run_agent_stops_cleanly_on_sigterm_and_spools_the_open_batch(tmp_path):
    node = NodeServer()
    keystore = tmp_path / "agent.json"
    new_keystore(keystore, "dev", private_key=KEY, dev=True, kdf="pbkdf2", iterations=2)
    config = {
        "rental_id": 7, "chain_id": TEST_CHAIN_ID, "market": TEST_MARKET, "nodes": [node.url],
        "keystore_path": str(keystore), "dev": True,
        "spool_path": str(tmp_path / "spool.db"), "sample_hz": 10, "batch_samples": 2,
        "source": {"kind": "simulated", "load_script": "idle:2,matmul:5", "simulated_gpus": 2},
    }
    make_agent_config(config)  # valid
    (tmp_path / "agent.json.cfg").write_text(json.dumps(config))
    env = dict(os.environ, GPURENT_AGENT_PASSWORD="dev")
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_AGENT, str(tmp_path / "agent.json.cfg"), str(REPO)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(node.accepted) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert len(node.accepted) >= 3, proc.stdout.read() if proc.poll() is not None else ""
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert "SIGTERM" in out
        with Spool(tmp_path / "spool.db") as spool:
            head = spool.chain_head(7)
            assert spool.pending_count() == 0
        assert_one_chain(node.accepted)
        assert (len(node.accepted), node.accepted[-1].batch_hash()) == (
            head.next_seq, head.head_hash)
        assert {s.gpu for b in node.accepted for s in b.samples} == {0, 1}
    finally:
        if proc.poll() is None:
            proc.kill()
        node.stop()


def test_a_stop_signal_still_delivers_the_batch_spooled_on_the_way_out(tmp_path):
    """SIGTERM sets the agent's stop event (run_agent); sampling ends at once, but the open batch
    cut on the way out must still reach the nodes (the delivery workers drain, then stop). Before,
    the workers shared the stop event and died with the sampler: a short rental lost its batch."""
    node = NodeServer()
    clock = FakeClock()
    try:
        with Spool(tmp_path / "spool.db") as spool:
            source = ReplaySource(TRACE_A, speed=1, period_ms=1000, clock_ms=clock)
            agent = make_agent(spool, [node.url], clock, source=source, drain_timeout_s=10)
            reads = 0
            real_read = source.read

            def read_then_sigterm():
                nonlocal reads
                reads += 1
                if reads == 3:
                    agent.stop.set()  # what the SIGTERM handler does
                return real_read()

            source.read = read_then_sigterm
            stats = agent.run()
            assert stats.batches == 1 and 1 <= stats.samples < 10  # only the open batch, cut on the way out
            assert [b.batch_seq for b in node.accepted] == [0]
            assert spool.pending_count() == 0
    finally:
        node.stop()


def test_config_refuses_unsafe_or_impossible_values(tmp_path):
    base = {"rental_id": 7, "chain_id": TEST_CHAIN_ID, "market": TEST_MARKET,
            "nodes": ["http://127.0.0.1:8000"], "keystore_path": "k.json", "spool_path": "s.db"}
    make_agent_config(base)
    for bad in (
        {"rental_id": -1}, {"nodes": []}, {"nodes": ["ftp://x"]},
        {"nodes": ["http://a:1", "http://a:1/"]}, {"sample_hz": 0}, {"batch_samples": 0},
        {"unknown": 1}, {"source": {"kind": "replay"}}, {"backoff_initial_s": 60},
        {"chain_id": 0}, {"market": "0x1234"}, {"chain_id": None},
    ):
        with pytest.raises(ConfigError):
            make_agent_config({**base, **bad})


def test_toml_config_builds_each_source_kind(tmp_path, monkeypatch):
    from oracle.agent import build_source, load_agent_config
    from oracle.errors import TelemetryError
    from oracle.telemetry.sources import MultiSource

    path = tmp_path / "agent.toml"
    path.write_text(textwrap.dedent(f"""
        rental_id = 7
        chain_id = 31337
        market = "0x4242424242424242424242424242424242424242"
        nodes = ["http://127.0.0.1:8701", "http://127.0.0.1:8702"]
        keystore_path = "agent.json"
        keystore_password_file = "{tmp_path / 'pw'}"
        spool_path = "spool.db"
        [source]
        kind = "replay"
        trace = "{TRACE_A}"
        speed = 50
        replay_gpus = 2
    """))
    (tmp_path / "pw").write_text("a long passphrase\n")
    config = load_agent_config(path)
    assert config.node_urls == ["http://127.0.0.1:8701", "http://127.0.0.1:8702"]
    assert config.password() == "a long passphrase"
    source = build_source(config)
    assert isinstance(source, MultiSource) and [g.index for g in source.gpus()] == [0, 1]
    simulated = load_agent_config(path, source={"kind": "simulated", "simulated_gpus": 3})
    assert len(build_source(simulated).gpus()) == 3
    with pytest.raises(TelemetryError):  # no NVIDIA driver on this machine (or a fake one)
        import pynvml

        monkeypatch.setattr(pynvml, "nvmlInit", lambda: (_ for _ in ()).throw(
            pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)))
        build_source(load_agent_config(path, source={"kind": "nvml"}))
    monkeypatch.delenv("GPURENT_AGENT_PASSWORD", raising=False)
    with pytest.raises(ConfigError):
        load_agent_config(path, keystore_password_file=None).password()


class _JitterySource:
    """Two reads of GPU 0 per tick, the second 5 ms after the first (a sample that adds no GPU time)."""

    def __init__(self, clock) -> None:
        self.clock = clock

    def gpus(self):
        from oracle.telemetry.samples import GpuInfo

        return [GpuInfo(0, "GPU-jitter", "NVIDIA H100 80GB HBM3", 700_000)]

    def read(self):
        from oracle.telemetry.samples import Sample

        t = self.clock()
        return [Sample(0, t, t, 100_000, 0, 0, 1000, 40), Sample(0, t + 5, t + 5, 100_000, 0, 0, 1000, 40)]


def test_agent_drops_samples_closer_than_the_protocol_interval(tmp_path):
    from oracle.telemetry.batches import MIN_SAMPLE_INTERVAL_MS

    clock = FakeClock()
    with Spool(tmp_path / "spool.db") as spool:
        agent = make_agent(spool, ["http://127.0.0.1:9"], clock, source=_JitterySource(clock), deliver=False)
        stats = agent.run(max_ticks=20)
        assert stats.dropped_samples == 20
        batches = [TelemetryBatch.from_wire_bytes(body) for body in spool.stored_batches(7)]
    times = [s.t_ms for b in batches for s in b.samples]
    assert times and all(b - a >= MIN_SAMPLE_INTERVAL_MS for a, b in zip(times, times[1:]))
