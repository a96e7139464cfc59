"""``gpurent provider serve``: the one process a provider runs beside its GPUs.

Each tick (``poll_interval_s``) the daemon:
1. follows the market's ``RentalOpened`` and ``Slashed`` events (``oracle.chain.events.
   EventFollower``, durable cursor in ``state_dir/chain.sqlite3``) and tracks every rental on
   its offers;
2. reconciles each tracked rental with its on-chain status (``getRental`` is the truth):
   - Open: once the renter's sealed workload has arrived and opens to the rental's committed
     ``workloadHash``, and policy accepts it (``accept = "auto"``, allowed images, free GPUs,
     before ``startDeadline - start_margin_s``), it starts the container on free GPUs, then
     sends ``startRental``; if the transaction fails the container is removed;
   - Active: keeps a telemetry agent (``oracle.agent.Agent``, spool ``state_dir/spool-<id>``)
     running for the rental's GPUs, and warns once when the budget runs low;
   - Ended / Cancelled / Finalized: stops the agent (it drains its spool) and removes the
     container;
3. polls NVML's per-GPU process lists and reports foreign GPU use (``oracle.agent.attribution``):
   a log line and webhook, and the count on every telemetry sample of that GPU until a poll no
   longer finds it (signed in the batch: the nodes leave those intervals unbilled and file a
   FOREIGN_PROCESS fault). The daemon's own process (the challenge solver) is not foreign.

Crash and restart: containers keep running when the daemon dies (SIGKILL) or stops (SIGTERM);
on start it lists its containers by label (``DockerRuntime.adopt``), keeps those whose rental is
still Active and restarts their agents, which resume the hash chain from their spools: the
telemetry has a gap of the restart's length (unpaid time, not a fault) and no re-numbering.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from oracle.protocol import RentalStatus
from oracle.provider import ProviderError
from oracle.provider.config import ProviderConfig
from oracle.provider.notify import Notifier
from oracle.provider.onchain import committed_workload_hash
from oracle.provider.runtime import DockerRuntime, RentalContainer
from oracle.provider.workload import ZERO_HASH, WorkloadSpec, open_workload, public_key_of

log = logging.getLogger(__name__)
FOLLOWER = "provider-daemon"
START_RETRY_S = 30


@dataclass
class AgentHandle:
    agent: Any
    thread: threading.Thread
    source: Any
    responder: Any = None  # the proof-of-GPU challenge responder, if challenges are on


@dataclass
class TrackedRental:
    rental_id: int
    container: RentalContainer | None = None
    agent: AgentHandle | None = None
    notes: set[str] = field(default_factory=set)  # one-time log lines already given
    retry_at: float = 0.0  # after a failed start: monotonic time of the next try


class ProviderDaemon:
    def __init__(self, config: ProviderConfig, *, client: Any, agent_key: bytes, runtime: DockerRuntime,
                 notifier: Notifier | None = None, nvml: Any = None,
                 source_factory: Callable[[ProviderConfig, list[int], int], Any] | None = None) -> None:
        from oracle.chain.events import CursorStore, EventFollower

        self.config = config
        self.client = client
        self.agent_key = agent_key
        self.public_key = public_key_of(agent_key)
        self.runtime = runtime
        self.notifier = notifier or Notifier(str(config.webhook_url) if config.webhook_url else None)
        self.nvml = nvml
        self.source_factory = source_factory or default_source
        self.state_dir = Path(config.state_dir)
        (self.state_dir / "workloads").mkdir(parents=True, exist_ok=True)
        self.provider = client.account
        self.rentals: dict[int, TrackedRental] = {}
        self.lock = threading.RLock()
        self.stop_event = threading.Event()
        self.store = CursorStore(self.state_dir / "chain.sqlite3")
        self.follower = EventFollower(
            client.w3, client.address, client.abi, self._on_event, store=self.store, name=FOLLOWER,
            event_names=["RentalOpened", "Slashed"], confirmations=config.confirmations,
            start_block=config.start_block, poll_interval_s=config.poll_interval_s)
        self._foreign_seen: set[tuple[str, int]] = set()
        self._foreign_counts: dict[str, int] = {}  # GPU UUID -> confirmed foreign processes, latest poll
        self._foreign_watch = None
        self._next_foreign_poll = 0.0

    # -- start-up: re-adopt what is still running ------------------------------------------------

    def adopt(self) -> list[int]:
        """Track every rental this daemon knew (durable store) and every container it started."""
        known = {rid for rid, status in self.store.rental_statuses(FOLLOWER).items() if status == "tracked"}
        containers = self.runtime.adopt()
        for rid in sorted(known | set(containers)):
            self.rentals.setdefault(rid, TrackedRental(rid, containers.get(rid)))
        for rid, container in sorted(containers.items()):
            self.notifier.event("container_adopted", rid, container=container.container_id[:12],
                                status=container.status)
        return sorted(containers)

    # -- chain events ----------------------------------------------------------------------------

    def _on_event(self, event: Any) -> None:
        args = event.args
        if event.name == "RentalOpened":
            if args["provider"].lower() != self.provider.lower():
                return
            if self.config.offers and int(args["offerId"]) not in self.config.offers:
                return
            rid = int(args["rentalId"])
            with self.lock:
                if rid not in self.rentals:
                    self.rentals[rid] = TrackedRental(rid)
                    self.store.set_rental_status(FOLLOWER, rid, "tracked")
                    self.notifier.event("rental_opened", rid, renter=args["renter"], gpus=int(args["gpuCount"]),
                                        budget=int(args["budget"]), start_deadline=int(args["startDeadline"]))
        elif event.name == "Slashed" and str(args.get("provider", "")).lower() == self.provider.lower():
            # Every field but the rental is passed through as the event has it (its shape is the market's).
            details = {k: (int(v) if isinstance(v, int) else str(v)) for k, v in args.items()
                       if k not in ("provider", "rentalId")}
            self.notifier.event("slash", int(args.get("rentalId", 0)), tx=event.tx_hash, **details)

    # -- the loop --------------------------------------------------------------------------------

    def tick(self) -> None:
        try:
            self.follower.poll_once()
        except Exception as exc:
            log.warning("following the chain failed (retrying next tick): %s", exc)
        for rid in sorted(self.rentals):
            try:
                self.reconcile(rid)
            except Exception as exc:
                log.exception("rental %d: reconcile failed: %s", rid, exc)
        try:
            self._poll_foreign_processes()
        except Exception:
            log.exception("checking the rented GPUs' processes failed")

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.tick()
            self.stop_event.wait(self.config.poll_interval_s)

    def shutdown(self) -> None:
        """Stop agents (they drain); containers keep running for the next start to re-adopt."""
        self.stop_event.set()
        for tracked in list(self.rentals.values()):
            self._stop_agent(tracked)
        self.notifier.close()
        self.store.close()

    # -- one rental ------------------------------------------------------------------------------

    def rental(self, rental_id: int) -> dict[str, Any]:
        return self.client.get_rental(rental_id)

    def reconcile(self, rental_id: int) -> None:
        with self.lock:
            tracked = self.rentals[rental_id]
            rental = self.rental(rental_id)
            status = RentalStatus(int(rental["status"]))
            if status is RentalStatus.OPEN:
                self._maybe_start(tracked, rental)
            elif status is RentalStatus.ACTIVE:
                self._keep_running(tracked, rental)
            elif status in (RentalStatus.ENDED, RentalStatus.CANCELLED, RentalStatus.FINALIZED):
                self._teardown(tracked, rental)

    def _note_once(self, tracked: TrackedRental, key: str, event: str, **details: Any) -> None:
        if key not in tracked.notes:
            tracked.notes.add(key)
            self.notifier.event(event, tracked.rental_id, **details)

    def _maybe_start(self, tracked: TrackedRental, rental: dict[str, Any]) -> None:
        rid = tracked.rental_id
        if time.monotonic() < tracked.retry_at:
            return
        if time.time() > int(rental["startDeadline"]) - self.config.start_margin_s:
            self._note_once(tracked, "deadline", "refused", why="too close to the start deadline")
            return
        if not self.workload_path(rid).is_file():
            if committed_workload_hash(self.client, rid) == ZERO_HASH:
                self._note_once(tracked, "uncommitted", "refused",
                                why="the rental committed to no workload (workloadHash 0); this daemon runs committed "
                                    "workloads only (a telemetry-only rental is started by hand: provider start + agent run)")
            else:
                self._note_once(tracked, "no-workload", "waiting", why="the renter's workload has not arrived yet")
            return
        if self.config.accept != "auto":
            self._note_once(tracked, "manual", "waiting", why="accept = manual: start it with `gpurent provider start`")
            return
        if tracked.container is None and not self._launch(tracked, rental):
            return
        assert tracked.container is not None
        try:
            result = self.client.start_rental(rid)
        except Exception as exc:
            self.runtime.remove(rid)
            tracked.container = None
            tracked.retry_at = time.monotonic() + START_RETRY_S
            self.notifier.event("refused", rid, why=f"startRental failed ({exc}); retrying in {START_RETRY_S} s")
            return
        started = result.events.get("RentalStarted", [{}])[0].get("startedAt")
        self.notifier.event("rental_started", rid, container=tracked.container.container_id[:12],
                            gpus=",".join(tracked.container.gpu_uuids), started_at=started, tx=result.tx_hash)
        if self.runs_telemetry:
            self._start_agent(tracked)

    def _keep_running(self, tracked: TrackedRental, rental: dict[str, Any]) -> None:
        rid = tracked.rental_id
        if tracked.container is None:
            tracked.container = self.runtime.adopt().get(rid)
        if tracked.container is None and self.workload_path(rid).is_file():
            # Started by hand (accept = "manual": `gpurent provider start`): run the workload now.
            if not self._launch(tracked, rental):
                return
            self.notifier.event("container_started", rid, container=tracked.container.container_id[:12])
        if tracked.container is None:
            if committed_workload_hash(self.client, rid) == ZERO_HASH:
                self._note_once(tracked, "bare", "waiting", why="no workload to run (started by hand: its telemetry "
                                                                  "is `gpurent agent run`'s)")
            else:
                self._note_once(tracked, "lost", "container_lost", why="Active on chain but no container on this host")
            return
        if self.runs_telemetry and (tracked.agent is None or not tracked.agent.thread.is_alive()):
            if tracked.agent is not None:
                log.warning("rental %d: telemetry agent stopped; restarting it", rid)
            self._start_agent(tracked)
        budget, paid = int(rental["budget"]), int(rental["paid"])
        if budget and budget - paid <= budget * self.config.budget_low_fraction:
            self._note_once(tracked, "budget-low", "budget_low", remaining=budget - paid, budget=budget)

    def _launch(self, tracked: TrackedRental, rental: dict[str, Any]) -> bool:
        """Open the renter's sealed workload, check it against the commitment and the policy, and
        run it on free GPUs; False (and one log line) if it cannot run yet or at all."""
        rid = tracked.rental_id
        try:
            spec = self.open_workload(rid, self.workload_path(rid).read_bytes())
            self.check_policy(spec)
        except ProviderError as exc:
            self._note_once(tracked, "bad-workload", "refused", why=str(exc))
            return False
        gpus = self.free_gpus(int(rental["gpuCount"]))
        if gpus is None:
            self._note_once(tracked, "no-gpus", "waiting", why=f"no {rental['gpuCount']} free GPUs")
            return False
        tracked.container = self.runtime.run(rid, spec, [g.uuid for g in gpus], int(rental["gpuCount"]))
        return True

    def _teardown(self, tracked: TrackedRental, rental: dict[str, Any]) -> None:
        rid = tracked.rental_id
        self._stop_agent(tracked, drain_challenges_s=self.config.telemetry.challenge_drain_s,
                         rental_ended=rental.get("statusName") == "Ended")
        removed = self.runtime.remove(rid)
        tracked.container = None
        self.store.set_rental_status(FOLLOWER, rid, "done")
        del self.rentals[rid]
        self.workload_path(rid).unlink(missing_ok=True)
        self.notifier.event("rental_ended", rid, status=rental["statusName"], reason=rental["endReasonName"],
                            container_removed=removed)

    # -- telemetry -------------------------------------------------------------------------------

    @property
    def runs_telemetry(self) -> bool:
        """False for ``telemetry.source = "external"`` (dev: a separate ``gpurent agent run`` does it)."""
        return self.config.telemetry.source != "external"

    def _gpu_indices(self, container: RentalContainer) -> list[int]:
        by_uuid = {g.uuid: g.index for g in self.config.gpus}
        return [by_uuid[u] for u in container.gpu_uuids if u in by_uuid]

    def _start_agent(self, tracked: TrackedRental) -> None:
        from oracle.agent import Agent, Spool
        from oracle.agent.attribution import ForeignStamp

        assert tracked.container is not None
        rid = tracked.rental_id
        indices = self._gpu_indices(tracked.container)
        source = self.source_factory(self.config, indices, rid)
        uuid_of = sample_gpu_uuids(source.gpus(), tracked.container.gpu_uuids)
        source = ForeignStamp(source, lambda: {index: self._foreign_counts.get(uuid, 0)
                                               for index, uuid in uuid_of.items()})
        spool = Spool(self.state_dir / f"spool-rental-{rid}.sqlite3")
        agent = Agent(source=source, spool=spool, private_key=self.agent_key, rental_id=rid,
                      nodes=self.config.node_urls, chain_id=self.config.chain_id,
                      market=self.config.market_address, sample_hz=self.config.telemetry.sample_hz,
                      batch_samples=self.config.telemetry.batch_samples)

        def run() -> None:
            try:
                agent.run()
            except Exception:
                log.exception("rental %d: telemetry agent failed", rid)
            finally:
                spool.close()

        thread = threading.Thread(target=run, name=f"agent-rental-{rid}", daemon=True)
        tracked.agent = AgentHandle(agent, thread, source, self._start_challenges(agent, rid))
        thread.start()
        log.info("rental %d: telemetry agent running for GPUs %s (resumes at batch %d)", rid, indices, agent.next_seq)

    def _start_challenges(self, agent: Any, rental_id: int) -> Any:
        """The agent's proof-of-GPU responder for this rental's GPUs (``telemetry.challenges``)."""
        if self.config.telemetry.challenges == "off":
            return None
        from oracle.agent import make_agent_config
        from oracle.agent.agent import start_challenge_responder

        agent_config = make_agent_config({
            "rental_id": rental_id, "nodes": self.config.node_urls, "dev": self.config.dev,
            "chain_id": self.config.chain_id, "market": self.config.market_address,
            "keystore_path": str(self.config.agent_keystore_path), "spool_path": str(self.state_dir / "unused"),
            "source": {"kind": self.config.telemetry.source}, "challenges": self.config.telemetry.challenges})
        return start_challenge_responder(agent_config, agent)

    def _stop_agent(self, tracked: TrackedRental, *, drain_challenges_s: float = 0.0,
                    rental_ended: bool = False) -> None:
        handle = tracked.agent
        if handle is None:
            return
        if handle.responder is not None:
            responder, rid = handle.responder, tracked.rental_id

            def finish() -> None:
                # A challenge drawn during the rental is owed after it ends too, and so is the end
                # challenge of an Ended rental (unanswered, each is a fault).
                if drain_challenges_s and not responder.drain(drain_challenges_s, rental_ended=rental_ended):
                    log.warning("rental %d: challenges still unanswered after %.0f s", rid, drain_challenges_s)
                responder.close()

            if drain_challenges_s:  # off the daemon's loop: other rentals go on meanwhile
                threading.Thread(target=finish, name=f"challenges-drain-{rid}", daemon=True).start()
            else:
                finish()
        handle.agent.stop.set()
        handle.thread.join(timeout=30)
        close = getattr(handle.source, "close", None)
        if close is not None:
            close()
        tracked.agent = None

    def _poll_foreign_processes(self) -> None:
        if self.nvml is None or time.monotonic() < self._next_foreign_poll:
            return
        self._next_foreign_poll = time.monotonic() + self.config.telemetry.foreign_process_poll_s
        from oracle.agent.attribution import FOREIGN_PROCESS_KIND, ForeignProcessWatch

        from oracle.agent.attribution import foreign_counts

        if self._foreign_watch is None:
            self._foreign_watch = ForeignProcessWatch(self.nvml, allowed_pids=frozenset({os.getpid()}))
        owners = {uuid: t.container.container_id for t in self.rentals.values()
                  if t.container is not None and t.agent is not None for uuid in t.container.gpu_uuids}
        if not owners:
            self._foreign_counts = {}
            return
        rental_of = {uuid: t.rental_id for t in self.rentals.values() if t.container is not None
                     for uuid in t.container.gpu_uuids}
        try:
            found = self._foreign_watch.poll(owners)
        except Exception as exc:
            log.warning("reading GPU processes failed: %s", exc)
            self._foreign_counts = {}  # unknown is not evidence
            return
        self._foreign_counts = foreign_counts(found)
        for use in found:
            if (use.gpu_uuid, use.pid) not in self._foreign_seen:
                self._foreign_seen.add((use.gpu_uuid, use.pid))
                self.notifier.event("fault", rental_of[use.gpu_uuid], kind=FOREIGN_PROCESS_KIND,
                                    fault="FOREIGN_PROCESS", detail=use.detail)

    # -- workloads, policy, GPUs ------------------------------------------------------------------

    def workload_path(self, rental_id: int) -> Path:
        return self.state_dir / "workloads" / f"rental-{rental_id}.sealed"

    def open_workload(self, rental_id: int, sealed: bytes) -> WorkloadSpec:
        committed = committed_workload_hash(self.client, rental_id)
        if committed is None and not self.config.dev:
            raise ProviderError("this market has no workloadHash commitment; the daemon runs committed workloads only")
        return open_workload(self.agent_key, sealed, committed)

    def check_policy(self, spec: WorkloadSpec) -> None:
        patterns = self.config.allowed_images
        if patterns and not any(fnmatch.fnmatchcase(spec.image, p) for p in patterns):
            raise ProviderError(f"image {spec.image} is not allowed by this provider ({', '.join(patterns)})")

    def free_gpus(self, count: int) -> list[Any] | None:
        busy = {u for t in self.rentals.values() if t.container is not None for u in t.container.gpu_uuids}
        free = [g for g in self.config.gpus if g.uuid not in busy]
        return free[:count] if len(free) >= count else None

    def accept_workload(self, rental_id: int, sealed: bytes) -> WorkloadSpec:
        """Called by the API when the renter uploads: checked now, run at the next tick."""
        spec = self.open_workload(rental_id, sealed)
        self.check_policy(spec)
        path = self.workload_path(rental_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(sealed)
        tmp.replace(path)
        with self.lock:
            tracked = self.rentals.get(rental_id)
            if tracked is not None:
                tracked.notes.discard("no-workload")
        return spec


def sample_gpu_uuids(source_gpus: list[Any], rented_uuids: list[str]) -> dict[int, str]:
    """Which rented GPU each of the source's GPU indices is: by UUID (NVML), else by position (a
    simulated dev source numbers its GPUs 0..n-1 under made-up UUIDs)."""
    out = {}
    for position, gpu in enumerate(sorted(source_gpus, key=lambda g: g.index)):
        if gpu.uuid in rented_uuids:
            out[gpu.index] = gpu.uuid
        elif position < len(rented_uuids):
            out[gpu.index] = rented_uuids[position]
    return out


def default_source(config: ProviderConfig, indices: list[int], rental_id: int) -> Any:
    """The rental's telemetry source: NVML for its GPU indices, or (dev) a simulated GPU set."""
    if config.telemetry.source == "simulated":
        from oracle.telemetry.sources import SimulatedSource

        return SimulatedSource(seed=rental_id, gpu_count=max(1, len(indices)))
    from oracle.telemetry.sources import NvmlSource

    return NvmlSource(indices=indices)
