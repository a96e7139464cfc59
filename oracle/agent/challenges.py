"""The agent's side of proof of GPU: poll the nodes for this rental's challenges, solve each on
the GPU it names, commit to every node, then open the cells the nodes draw.

Pull, not push: the agent already talks to the nodes and nodes need no route to the provider's
machine. :class:`ChallengeResponder` is one poll/answer loop; the provider daemon reuses it.
``cheat`` (dev mode only) corrupts every opening, for the demo's unpaid-period run.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import httpx

from oracle.chain.background import BackgroundLoop
from oracle.proof.params import profile_for
from oracle.proof.solver import NumpySolver, Solution, Solver
from oracle.proof.seeds import openings_digest
from oracle.telemetry.batches import canonical_json, sign_batch_hash

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
        # one worker per GPU: an 8-GPU rental's challenges are solved side by side, not in turn
        self._workers = {index: ThreadPoolExecutor(1, thread_name_prefix=f"pog-gpu{index}") for index in self.gpus}
        self._lock = threading.Lock()
        self._listed: dict[str, set[str]] = {}            # challenge -> nodes that listed it
        self._solving: dict[str, Future] = {}              # challenge -> its solve (then commit)
        self._opening: dict[tuple[str, tuple], Future] = {}  # (challenge, cells) -> openings
        self._committed: dict[str, set[str]] = {}
        self._opened: dict[str, set[str]] = {}
        self._end_status: dict[str, str] = {}               # node -> where the rental's end challenge stands
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
        for worker in self._workers.values():
            worker.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    def drain(self, timeout_s: float, *, rental_ended: bool = False) -> bool:
        """Keep answering until every node's pending challenges are opened (a challenge drawn
        during the rental is owed after it ends too), or ``timeout_s``; True when nothing is owed.

        ``rental_ended``: the rental ended on chain, so its end challenge is owed as well: wait
        until every node that answers has issued it (and it is answered), or says the rental
        has none."""
        self.stop()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._end_status.clear()
            owed = self.poll_once()
            if not owed and (not rental_ended or self._end_settled()):
                return True
            time.sleep(self.poll_interval_s)
        return False

    def _end_settled(self) -> bool:
        return all(status in ("issued", "none") for status in self._end_status.values())

    def poll_once(self) -> int:
        """Ask every node; solve what is new; commit and open where each node is ready. Returns
        how many (node, challenge) pairs still wait for openings from us."""
        owed = 0
        for url in self.node_urls:
            try:
                response = self._client.get(f"{url}/v1/challenges", params={"rental_id": self.rental_id})
            except httpx.HTTPError as exc:
                self._failed(f"{url}: {exc}")
                continue
            if response.status_code != 200:
                continue
            body = response.json()
            if "end_challenge" in body:
                self._end_status[url] = body["end_challenge"]
            for challenge in body["challenges"]:
                self._answer(url, challenge)
                if challenge["gpu_index"] in self.gpus and url not in self._opened.get(challenge["id"], set()):
                    owed += 1
        return owed

    def _answer(self, url: str, challenge: dict[str, Any]) -> None:
        cid = challenge["id"]
        gpu = self.gpus.get(challenge["gpu_index"])
        if gpu is None:
            return  # not a GPU of this machine: never answer for a GPU we do not have
        with self._lock:
            self._listed.setdefault(cid, set()).add(url)
            solving = self._solving.get(cid)
            if solving is None:
                self._solving[cid] = self._workers[gpu.index].submit(self._solve_and_commit, challenge, gpu)
                return
        if not solving.done():
            return
        try:
            solution = solving.result()
        except Exception as exc:  # the solver failed (e.g. out of memory): retried at the next poll
            self._failed(f"solving {cid}: {type(exc).__name__}: {exc}")
            with self._lock:
                self._solving.pop(cid, None)
            return
        self._commit(url, solution)
        cells = challenge.get("cells")
        if cells is None or url in self._opened.get(cid, set()) or url not in self._committed.get(cid, set()):
            return
        key = (cid, tuple(tuple(cell) for cell in cells))
        with self._lock:
            opening = self._opening.get(key)
            if opening is None:  # the openings replay rows on the same GPU: its worker computes them
                self._opening[key] = self._workers[gpu.index].submit(self._openings, solution, key[1])
                return
        if opening.done():
            self._post_openings(url, cid, opening.result())

    def _solve_and_commit(self, challenge: dict[str, Any], gpu: GpuIdentity) -> Solution:
        shape = profile_for(challenge["profile"]).size(challenge["index"]).shape
        log.info("challenge %s: solving on GPU %d (%s)", challenge["id"][:10], gpu.index, challenge["profile"])
        solution = self.solver_for(gpu.index).solve(bytes.fromhex(challenge["id"][2:]), shape, gpu.uuid, gpu.serial)
        self.stats.solved += 1
        log.info("challenge %s: solved in %d ms; committing", challenge["id"][:10], solution.solve_ms)
        with self._lock:
            urls = sorted(self._listed.get(challenge["id"], ()))
        for url in urls:  # commit at once: the deadline runs from the block, not from our next poll
            try:
                self._commit(url, solution)
            except httpx.HTTPError as exc:
                self._failed(f"{url}: {exc}")
        return solution

    def _commit(self, url: str, solution: Solution) -> None:
        cid = "0x" + solution.seed.hex()
        committed = self._committed.setdefault(cid, set())
        if url in committed:
            return
        body = {"top_root": "0x" + solution.top_root.hex(), "gpu_uuid": solution.gpu_uuid,
                "gpu_serial": solution.gpu_serial, "signature": "0x" + sign_batch_hash(self._key, solution.digest).hex()}
        response = self._client.post(f"{url}/v1/challenges/{cid}/commitment", json=body)
        if response.status_code in (200, 409):
            committed.add(url)
            self.stats.committed += 1

    def _openings(self, solution: Solution, cells: tuple) -> list[dict[str, Any]]:
        openings = [o.to_wire() for o in solution.open([tuple(cell) for cell in cells])]
        return [_corrupt(o) for o in openings] if self.cheat else openings

    def _post_openings(self, url: str, cid: str, openings: list[dict[str, Any]]) -> None:
        signature = sign_batch_hash(self._key, openings_digest(bytes.fromhex(cid[2:]), canonical_json(openings)))
        response = self._client.post(f"{url}/v1/challenges/{cid}/openings",
                                     json={"openings": openings, "signature": "0x" + signature.hex()})
        if response.status_code in (200, 409):
            self._opened.setdefault(cid, set()).add(url)
            self.stats.opened += 1
            outcome = response.json().get("outcome") if response.status_code == 200 else None
            if outcome:
                self.stats.outcomes[cid] = outcome

    def _failed(self, message: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = message[:300]
        log.warning("challenge: %s", self.stats.last_error)


def _corrupt(opening: dict[str, Any]) -> dict[str, Any]:
    """The ``--cheat`` answer: the end row with its first byte changed."""
    end = dict(opening["end"])
    row = bytes.fromhex(end["row"][2:])
    end["row"] = "0x" + (bytes([row[0] ^ 0xFF]) + row[1:]).hex()
    return {**opening, "end": end}
