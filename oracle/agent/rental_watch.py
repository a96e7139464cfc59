"""What an agent run by hand needs from the chain: its rental's start, its agent, whether it still runs.

``RentalOnChain`` reads the rental (``getRental``/``rentalTerms``) with a throwaway read-only
account; ``AgentMonitor`` is the thread beside a running agent that stops it when the rental is no
longer Active on chain, or when every node has refused its batches for good, and keeps the
counts for one progress line.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RentalState:
    rental_id: int
    status: str  # RENTAL_STATUS names: Open, Active, Ended, ...
    started_at: int
    ended_at: int
    agent: str
    gpu_count: int
    max_end_at: int  # started_at + the rental's max duration (0 before the start)


class RentalOnChain:
    """Read-only view of one rental (no key: nothing is ever sent)."""

    def __init__(self, rpc_url: str, market: str, rental_id: int) -> None:
        from eth_account import Account

        from oracle.chain.client import MarketClient
        from oracle.chain.contract import connect
        from oracle.chain.tx import TransactionSender, TxPolicy

        sender = TransactionSender(connect(rpc_url, timeout_s=10.0), Account.create(),
                                   policy=TxPolicy(rpc_retries=1, backoff_base_s=0.2, backoff_max_s=1.0))
        self.client = MarketClient(sender, market)
        self.rental_id = rental_id

    def chain_id(self) -> int:
        return int(self.client.w3.eth.chain_id)

    def read(self) -> RentalState:
        r = self.client.get_rental(self.rental_id)
        agent = ""
        if int(r["status"]) != 0:
            agent = str(self.client.rental_terms(self.rental_id)["agent"])
        started = int(r["startedAt"])
        return RentalState(self.rental_id, str(r["statusName"]), started, int(r["endedAt"]), agent,
                           int(r["gpuCount"]), started + int(r["maxDurationSeconds"]) if started else 0)


@dataclass
class Progress:
    """What the agent has done so far, for the progress line and the exit code."""

    samples: int = 0
    batches: int = 0
    delivered: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    last_refusal: str | None = None
    stopped_because: str | None = None


class AgentMonitor:
    """Beside a running :class:`oracle.agent.agent.Agent`: stops it when its rental ends on chain
    (polled every ``poll_s``) or when every node refuses its batches, and reports progress."""

    def __init__(self, agent: Any, stop: threading.Event, *, rental: RentalOnChain | None,
                 on_progress: Callable[[Progress], None] | None = None, poll_s: float = 5.0,
                 tick_s: float = 1.0) -> None:
        self.agent, self.stop, self.rental = agent, stop, rental
        self.on_progress, self.poll_s, self.tick_s = on_progress, poll_s, tick_s
        self.progress = Progress()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agent-monitor", daemon=True)

    def start(self) -> "AgentMonitor":
        self._thread.start()
        return self

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=10)
        self.snapshot()

    def snapshot(self) -> Progress:
        p = self.progress
        p.samples, p.batches = self.agent.stats.samples, self.agent.stats.batches
        for worker in self.agent.workers:
            p.delivered[worker.node] = worker.stats.delivered + worker.stats.duplicates
            parked = self.agent.spool.parked(worker.node)
            p.refused[worker.node] = len(parked)
            if parked and parked[-1][2]:
                p.last_refusal = f"{worker.node}: {parked[-1][2]}"
        return p

    def everyone_refuses(self) -> bool:
        p = self.progress
        return bool(p.refused) and all(p.refused.get(node, 0) > 0 and p.delivered.get(node, 0) == 0
                                       for node in p.refused)

    def _run(self) -> None:
        next_poll = 0.0
        while not self._done.is_set() and not self.stop.is_set():
            try:
                self.snapshot()
                if self.everyone_refuses():
                    self.progress.stopped_because = "refused"
                    self.stop.set()
                    break
                if self.rental is not None and time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + self.poll_s
                    state = self.rental.read()
                    if state.status != "Active":
                        self.progress.stopped_because = f"rental {state.status.lower()}"
                        self.stop.set()
                        break
                if self.on_progress is not None:
                    self.on_progress(self.progress)
            except Exception as exc:  # a slow RPC must not kill the agent: try again next tick
                log.warning("agent monitor: %s", exc)
            self._done.wait(self.tick_s)
