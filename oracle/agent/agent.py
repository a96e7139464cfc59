"""The telemetry agent: sample, batch, sign, spool, deliver.

One sampling loop (the caller's thread) reads the source at ``sample_hz`` on a fixed schedule,
keeps only samples whose time moves forward for their GPU, and cuts a batch when it holds
``batch_samples`` samples per GPU or has been open ``batch_seconds``. Each batch gets the
rental's next ``batch_seq`` and the previous batch's hash, is signed with the agent key and is
written to the ``Spool`` (fsynced) *before* any node sees it; then the per-node delivery workers
are woken. On start the agent resumes the chain from the spool, so after a restart nothing is
re-numbered and every batch still queued is sent.

Memory is bounded: the loop holds at most one open batch (plus what one ``read()`` returns), each
worker holds one batch body; the backlog lives on disk.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from oracle.agent.config import AgentConfig
from oracle.agent.delivery import Backoff, DeliveryWorker, normalise_node_url
from oracle.agent.spool import Spool
from oracle.errors import ConfigError
from oracle.telemetry.batches import (
    GENESIS_PREV_HASH,
    MAX_SAMPLES_PER_BATCH,
    MIN_SAMPLE_INTERVAL_MS,
    TelemetryBatch,
    address_of,
    sort_samples,
    to_checksum_address,
)
from oracle.telemetry.samples import GpuInfo, Sample

log = logging.getLogger(__name__)


class Source(Protocol):
    def gpus(self) -> list[GpuInfo]: ...
    def read(self) -> list[Sample]: ...


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class AgentStats:
    ticks: int = 0
    samples: int = 0
    dropped_samples: int = 0
    batches: int = 0


class Agent:
    """Samples ``source`` for one rental and delivers signed batches to ``nodes``.

    ``clock_ms`` and ``sleep`` are injectable for tests and the benchmark (``sleep(seconds)``
    must return early when ``stop`` is set; the default is ``stop.wait``). With
    ``deliver=False`` no workers are started: batches are only spooled.
    """

    def __init__(
        self,
        *,
        source: Source,
        spool: Spool,
        private_key: bytes,
        rental_id: int,
        nodes: Sequence[str],
        chain_id: int,
        market: str,
        sample_hz: float = 1.0,
        batch_samples: int = 10,
        batch_seconds: float | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
        sleep: Callable[[float], object] | None = None,
        stop: threading.Event | None = None,
        deliver: bool = True,
        backoff_factory: Callable[[], Backoff] = Backoff,
        request_timeout_s: float = 5.0,
        drain_timeout_s: float = 5.0,
        idle_poll_s: float = 1.0,
        spool_warn_batches: int = 10_000,
    ) -> None:
        if sample_hz <= 0:
            raise ConfigError("sample_hz must be positive")
        self.source = source
        self.spool = spool
        self._key = private_key
        self.agent_address = address_of(private_key)
        self.rental_id = rental_id
        # The deployment every batch is signed for (a node of another chain or market refuses it).
        self.chain_id = chain_id
        self.market = to_checksum_address(market)
        self.nodes = [normalise_node_url(n) for n in nodes]
        if not self.nodes:
            raise ConfigError("the agent needs at least one oracle node")
        self.gpus = tuple(sorted(source.gpus(), key=lambda g: g.index))
        if not self.gpus:
            raise ConfigError("the source has no GPU")
        self.period_ms = max(1, round(1000 / sample_hz))
        self.batch_samples = batch_samples
        self._max_batch = batch_samples * len(self.gpus)
        if self._max_batch > MAX_SAMPLES_PER_BATCH:
            raise ConfigError(
                f"batch_samples x GPUs = {self._max_batch} exceeds the wire limit "
                f"{MAX_SAMPLES_PER_BATCH}"
            )
        seconds = batch_seconds if batch_seconds is not None else batch_samples / sample_hz
        self.batch_ms = max(1, round(seconds * 1000))
        self.clock_ms = clock_ms
        self.stop = stop or threading.Event()
        # The delivery workers have their own stop: a SIGTERM stops sampling at once, while the
        # workers still deliver what is spooled until ``shutdown`` has drained (bounded) and stops them.
        self._deliveries_stop = threading.Event()
        self._sleep = sleep or self.stop.wait
        self.drain_timeout_s = drain_timeout_s
        self.spool_warn_batches = spool_warn_batches
        self.stats = AgentStats()

        head = spool.chain_head(rental_id)
        if head is None:
            self.next_seq, self.prev_hash, last_t_ms = 0, GENESIS_PREV_HASH, -MIN_SAMPLE_INTERVAL_MS
        else:
            if head.agent != self.agent_address:
                raise ConfigError(
                    f"the spool's chain for rental {rental_id} is signed by {head.agent}, "
                    f"not by this agent key {self.agent_address}"
                )
            self.next_seq, self.prev_hash, last_t_ms = head.next_seq, head.head_hash, head.last_t_ms
            log.info("resuming rental %s at batch %d", rental_id, self.next_seq)
        self._last_t_ms = {g.index: last_t_ms for g in self.gpus}
        self._buffer: list[Sample] = []
        self._buffer_opened_ms: int | None = None

        self.workers: list[DeliveryWorker] = []
        if deliver:
            for node in self.nodes:
                spool.ensure_node(node, rental_id)
                self.workers.append(
                    DeliveryWorker(
                        node,
                        spool,
                        stop=self._deliveries_stop,
                        backoff=backoff_factory(),
                        request_timeout_s=request_timeout_s,
                        idle_poll_s=idle_poll_s,
                    )
                )
        stale = set(spool.nodes()) - set(self.nodes)
        for node in sorted(stale):
            log.warning(
                "%d batches are queued for %s, which is no longer configured; kept in the spool",
                len(spool.pending(node)), node,
            )

    # -- sampling and batching -----------------------------------------------------------------

    def tick(self) -> list[TelemetryBatch]:
        """One read of the source; returns the batches this read completed (already spooled)."""
        self.stats.ticks += 1
        fresh = []
        wanted = self._last_t_ms
        for s in self.source.read():
            last = wanted.get(s.gpu)
            if last is None:
                continue  # a GPU outside this rental
            if s.t_ms < last + MIN_SAMPLE_INTERVAL_MS:
                self.stats.dropped_samples += 1
                log.warning("GPU %d sample at %d ms is not %d ms after %d ms; dropped", s.gpu, s.t_ms,
                            MIN_SAMPLE_INTERVAL_MS, last)
                continue
            wanted[s.gpu] = s.t_ms
            fresh.append(s)
        self.stats.samples += len(fresh)
        if fresh and not self._buffer:
            self._buffer_opened_ms = self.clock_ms()
        self._buffer.extend(fresh)
        cut = []
        while len(self._buffer) >= self._max_batch:
            self._buffer.sort(key=lambda s: (s.t_ms, s.gpu))
            cut.append(self._cut(self._buffer[: self._max_batch]))
            del self._buffer[: self._max_batch]
            self._buffer_opened_ms = self.clock_ms() if self._buffer else None
        if self._buffer and self.clock_ms() - (self._buffer_opened_ms or 0) >= self.batch_ms:
            cut.append(self.flush_open_batch())
        return cut

    def flush_open_batch(self) -> TelemetryBatch | None:
        """Cut whatever samples are buffered into a batch now (shutdown, tests)."""
        if not self._buffer:
            return None
        batch = self._cut(self._buffer)
        self._buffer = []
        self._buffer_opened_ms = None
        return batch

    def _cut(self, samples: list[Sample]) -> TelemetryBatch:
        batch = TelemetryBatch(
            rental_id=self.rental_id,
            agent=self.agent_address,
            batch_seq=self.next_seq,
            prev_hash=self.prev_hash,
            gpus=self.gpus,
            samples=sort_samples(samples),
            chain_id=self.chain_id,
            market=self.market,
        ).signed(self._key)
        self.spool.append(batch, self.nodes)  # durable before any node is sent it
        self.next_seq += 1
        self.prev_hash = batch.batch_hash()
        self.stats.batches += 1
        for worker in self.workers:
            worker.notify()
        if self.next_seq % 100 == 0:
            backlog = self.spool.pending_count()
            if backlog > self.spool_warn_batches * len(self.nodes):
                log.warning("spool backlog is %d deliveries; is a node down?", backlog)
        return batch

    # -- the loop ------------------------------------------------------------------------------

    def run(self, *, max_ticks: int | None = None) -> AgentStats:
        """Sample until ``stop`` is set, the source runs out, or ``max_ticks`` reads.

        On the way out the open batch is spooled, the workers get up to ``drain_timeout_s`` to
        empty their queues, and they are stopped; what is still queued stays in the spool.
        """
        for worker in self.workers:
            worker.start()
        try:
            next_tick = self.clock_ms()
            while not self.stop.is_set():
                self.tick()
                if getattr(self.source, "finished", False):
                    log.info("source finished")
                    break
                if max_ticks is not None and self.stats.ticks >= max_ticks:
                    break
                next_tick += self.period_ms
                now = self.clock_ms()
                if next_tick < now - self.period_ms:
                    log.debug("sampling fell behind by %d ms; skipping ticks", now - next_tick)
                    next_tick = now
                if next_tick > now:
                    self._sleep((next_tick - now) / 1000)
        finally:
            try:
                self.flush_open_batch()
            except Exception:
                log.exception("could not spool the open batch of %d samples on the way out",
                              len(self._buffer))
            finally:
                self.shutdown()
        return self.stats

    def shutdown(self) -> None:
        """Drain (bounded), then stop and join the delivery workers."""
        if self.workers:
            deadline = time.monotonic() + self.drain_timeout_s
            while time.monotonic() < deadline and any(
                self.spool.pending_count(w.node) for w in self.workers
            ):
                time.sleep(0.05)
        self.stop.set()
        self._deliveries_stop.set()
        for worker in self.workers:
            worker.join(timeout=30)
            worker.close()
        left = self.spool.pending_count()
        if left:
            log.info("%d deliveries left in the spool for the next start", left)


def build_source(config: AgentConfig) -> Source:
    """The telemetry source the config names."""
    from oracle.telemetry.sources import (
        MultiSource,
        NvmlSource,
        ReplaySource,
        SimulatedSource,
    )

    src = config.source
    if src.kind == "nvml":
        return NvmlSource(indices=src.indices)
    if src.kind == "replay":
        assert src.trace is not None
        replays = [
            ReplaySource(src.trace, speed=src.speed, gpu=i, period_ms=src.period_ms,
                         not_before_ms=src.not_before_ms)
            for i in range(src.replay_gpus)
        ]
        return replays[0] if len(replays) == 1 else MultiSource(replays)
    kwargs = {} if src.load_script is None else {"load_script": src.load_script}
    return SimulatedSource(
        seed=src.seed, gpu_count=src.simulated_gpus, repeat=src.repeat, **kwargs
    )


def build_agent(config: AgentConfig, *, source: Source | None = None,
                stop: threading.Event | None = None) -> Agent:
    """Open the keystore and the spool, build the source and the agent (nothing runs yet)."""
    from oracle.keys import load_keystore

    key = load_keystore(config.keystore_path, config.password(), dev=config.dev)
    spool = Spool(config.spool_path)
    try:
        return Agent(
            source=source or build_source(config),
            spool=spool,
            private_key=key,
            rental_id=config.rental_id,
            nodes=config.node_urls,
            chain_id=config.chain_id,
            market=config.market,
            sample_hz=config.sample_hz,
            batch_samples=config.batch_samples,
            batch_seconds=config.effective_batch_seconds,
            stop=stop,
            backoff_factory=lambda: Backoff(config.backoff_initial_s, config.backoff_max_s),
            request_timeout_s=config.request_timeout_s,
            drain_timeout_s=config.drain_timeout_s,
            spool_warn_batches=config.spool_warn_batches,
        )
    except BaseException:
        spool.close()
        raise


def start_challenge_responder(config: AgentConfig, agent: Agent):
    """The proof-of-GPU responder beside the telemetry loop (``config.challenges`` != "off"), started."""
    responder = challenge_responder(config, agent._key, agent.gpus)
    return None if responder is None else responder.start()


def challenge_responder(config: AgentConfig, key: bytes, gpus: Sequence[GpuInfo]):
    """The proof-of-GPU responder for ``gpus`` (not started), or None with ``challenges = "off"``.

    NVML source: each GPU's real UUID and serial from NVML. Replay/simulated sources (dev): the
    source's UUIDs and serial "dev-<index>"; the numpy solver then only fits the dev profile.
    """
    if config.challenges == "off":
        return None
    from oracle.agent.challenges import ChallengeResponder, GpuIdentity, nvml_identities
    from oracle.proof.solver import NumpySolver

    if config.source.kind == "nvml":
        wanted = {gpu.index for gpu in gpus}
        identities = [gpu for gpu in nvml_identities() if gpu.index in wanted]
    else:
        identities = [GpuIdentity(gpu.index, gpu.uuid, f"dev-{gpu.index}") for gpu in gpus]
    if config.challenges == "cuda":
        from oracle.proof.solver_torch import TorchSolver

        solvers: dict[int, TorchSolver] = {}  # one per GPU: it checks itself once, then answers

        def solver_for(index: int) -> TorchSolver:
            if index not in solvers:
                solvers[index] = TorchSolver(index)
            return solvers[index]
    else:
        solver_for = lambda index: NumpySolver()  # noqa: E731
    log.info("answering proof-of-GPU challenges with the %s solver%s", config.challenges,
             " (CHEATING: dev mode)" if config.challenge_cheat else "")
    return ChallengeResponder(config.node_urls, config.rental_id, key, identities, solver_for,
                              poll_interval_s=config.challenge_poll_s, cheat=config.challenge_cheat,
                              timeout_s=config.request_timeout_s)


def run_agent(config: AgentConfig, *, monitor: Callable[[Agent, threading.Event], object] | None = None) -> int:
    """Run the agent until SIGINT/SIGTERM (or a finite source ends); return an exit code.

    This is what ``gpurent agent run`` calls. Signals set the stop event; the loop then spools
    the open batch, drains deliveries for up to ``drain_timeout_s`` and exits 0. ``monitor``
    (agent, stop) may start a watcher beside the loop (closed on the way out if it has ``close``).
    """
    stop = threading.Event()
    agent = build_agent(config, stop=stop)
    watcher = monitor(agent, stop) if monitor is not None else None
    log.info(
        "agent %s: rental %s (chain %d, market %s), %d GPU(s), %s Hz, batches of %d samples/GPU, nodes %s",
        agent.agent_address, config.rental_id, config.chain_id, config.market, len(agent.gpus), config.sample_hz,
        config.batch_samples, ", ".join(agent.nodes),
    )

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    previous = {}
    on_main_thread = threading.current_thread() is threading.main_thread()
    if on_main_thread:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _on_signal)
    responder = start_challenge_responder(config, agent)
    try:
        agent.run()
    finally:
        close_watcher = getattr(watcher, "close", None)
        if close_watcher is not None:
            close_watcher()
        if responder is not None:
            progress = getattr(watcher, "progress", None)
            ended = getattr(progress, "stopped_because", None) == "rental ended"  # its end challenge is owed
            if not responder.drain(config.challenge_drain_s, rental_ended=ended):
                log.warning("challenges still unanswered after %.0f s; exiting", config.challenge_drain_s)
            responder.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        close = getattr(agent.source, "close", None)
        if close is not None:
            close()
        agent.spool.close()
    return 0


def answer_owed_challenges(config: AgentConfig) -> bool:
    """Answer what the rental still owes after it ended: challenges drawn during it and its end
    challenge, for at most ``config.challenge_drain_s``; True when nothing is owed any more.

    What ``gpurent agent answer`` runs when the agent was not running at the rental's end (a
    replayed trace that ran out, an agent restarted). Samples nothing and leaves the spool alone:
    it needs only the key and the source's GPUs."""
    from oracle.keys import load_keystore

    if config.challenges == "off":
        raise ConfigError("challenges = \"off\" in the agent config: nothing would answer them")
    key = load_keystore(config.keystore_path, config.password(), dev=config.dev)
    source = build_source(config)
    try:
        responder = challenge_responder(config, key, sorted(source.gpus(), key=lambda g: g.index))
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
    try:
        return responder.drain(config.challenge_drain_s, rental_ended=True)
    finally:
        responder.close()
