"""The agent's side of proof of GPU: poll the nodes for this rental's challenges, solve each on
the GPU it names, commit to every node, then open the cells the nodes draw.

Pull, not push: the agent already talks to the nodes and nodes need no route to the provider's
machine. :class:`ChallengeResponder` is one poll/answer loop; the provider daemon reuses it.
``cheat`` (dev mode only) corrupts every opening, for the demo's unpaid-period run.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import httpx

from oracle.chain.background import BackgroundLoop
from oracle.proof.params import profile_for
from oracle.proof.solver import NumpySolver, Solution, Solver
from oracle.telemetry.batches import sign_batch_hash

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GpuIdentity:
    index: int
    uuid: str
    serial: str


def nvml_identities() -> list[GpuIdentity]:
    """Every GPU's NVML index, UUID and serial (needs the NVIDIA driver)."""
    import pynvml

    pynvml.nvmlInit()
    try:
        out = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            try:
                serial = pynvml.nvmlDeviceGetSerial(handle)
            except pynvml.NVMLError:
                serial = "unavailable"
            out.append(GpuIdentity(index, _text(pynvml.nvmlDeviceGetUUID(handle)), _text(serial)))
        return out
    finally:
        pynvml.nvmlShutdown()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class ResponderStats:
    solved: int = 0
    committed: int = 0
    opened: int = 0
    errors: int = 0
    last_error: str | None = None
    outcomes: dict[str, str] = field(default_factory=dict)


class ChallengeResponder(BackgroundLoop):
    thread_name = "gpurent-agent-challenges"

    def __init__(self, node_urls: Sequence[str], rental_id: int, agent_key: bytes, gpus: Sequence[GpuIdentity],
                 solver_for: Callable[[int], Solver] | None = None, poll_interval_s: float = 1.0,
                 cheat: bool = False, timeout_s: float = 10.0) -> None:
        self.node_urls = list(node_urls)
        self.rental_id = rental_id
        self._key = agent_key
        self.gpus = {gpu.index: gpu for gpu in gpus}
        self.solver_for = solver_for or (lambda gpu_index: NumpySolver())
        self.poll_interval_s = poll_interval_s
        self.cheat = cheat
        self.stats = ResponderStats()
        self._solutions: dict[str, Solution] = {}
        self._committed: dict[str, set[str]] = {}
        self._opened: dict[str, set[str]] = {}
        self._client = httpx.Client(timeout=timeout_s)
        self._stop = threading.Event()
        self._thread = None

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # a node down or a bad answer: counted, retried next poll
                self.stats.errors += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("challenge poll: %s", self.stats.last_error)
            self._stop.wait(self.poll_interval_s)

    def close(self) -> None:
        self.stop()
        self._client.close()

    def poll_once(self) -> None:
        """Ask every node; solve what is new; commit and open where each node is ready."""
        for url in self.node_urls:
            try:
                response = self._client.get(f"{url}/v1/challenges", params={"rental_id": self.rental_id})
            except httpx.HTTPError as exc:
                self.stats.errors += 1
                self.stats.last_error = f"{url}: {exc}"
                continue
            if response.status_code != 200:
                continue
            for challenge in response.json()["challenges"]:
                self._answer(url, challenge)

    def _answer(self, url: str, challenge: dict[str, Any]) -> None:
        cid = challenge["id"]
        solution = self._solutions.get(cid)
        if solution is None:
            gpu = self.gpus.get(challenge["gpu_index"])
            if gpu is None:
                return  # not a GPU of this machine: never answer for a GPU we do not have
            shape = profile_for(challenge["profile"]).size(challenge["index"]).shape
            solution = self.solver_for(gpu.index).solve(bytes.fromhex(cid[2:]), shape, gpu.uuid, gpu.serial)
            self._solutions[cid] = solution
            self.stats.solved += 1
        committed = self._committed.setdefault(cid, set())
        if url not in committed:
            body = {"top_root": "0x" + solution.top_root.hex(), "gpu_uuid": solution.gpu_uuid,
                    "gpu_serial": solution.gpu_serial,
                    "signature": "0x" + sign_batch_hash(self._key, solution.digest).hex()}
            response = self._client.post(f"{url}/v1/challenges/{cid}/commitment", json=body)
            if response.status_code in (200, 409):
                committed.add(url)
                self.stats.committed += 1
        cells = challenge.get("cells")
        opened = self._opened.setdefault(cid, set())
        if cells is not None and url not in opened and url in committed:
            openings = [o.to_wire() for o in solution.open([tuple(cell) for cell in cells])]
            if self.cheat:
                openings = [_corrupt(o) for o in openings]
            response = self._client.post(f"{url}/v1/challenges/{cid}/openings", json={"openings": openings})
            if response.status_code in (200, 409):
                opened.add(url)
                self.stats.opened += 1
                outcome = response.json().get("outcome") if response.status_code == 200 else None
                if outcome:
                    self.stats.outcomes[cid] = outcome


def _corrupt(opening: dict[str, Any]) -> dict[str, Any]:
    """The ``--cheat`` answer: the end row with its first byte changed."""
    end = dict(opening["end"])
    row = bytes.fromhex(end["row"][2:])
    end["row"] = "0x" + (bytes([row[0] ^ 0xFF]) + row[1:]).hex()
    return {**opening, "end": end}
