"""Which processes use each rented GPU, and whether they belong to the renter's container.

During a rental, energy on a rented GPU belongs to the renter's processes. GPU use by any
other process (the provider mining on the renter's GPU and billing the energy) is the
FOREIGN_PROCESS misbehaviour (fault kind 7, docs/protocol.md).

- ``read_gpu_processes(nvml, handles)``: the NVML read path (compute and graphics processes
  of each GPU, host PIDs). These queries are slow and privacy-sensitive, which is why the
  telemetry source never makes them; the provider daemon polls them every few seconds.
- ``container_id_from_cgroup(text)``: the Docker container id in ``/proc/<pid>/cgroup``
  (cgroup v1 ``/docker/<id>``, systemd ``docker-<id>.scope``, cgroup v2, containerd's
  ``cri-containerd-<id>``); None for a host process.
- ``foreign_gpu_use(processes, container_of_pid, owner_of_gpu, allowed_pids)``: the pure
  judgement. ``allowed_pids`` are the daemon's own (its proof-of-GPU solver computes challenges
  on the rented GPU from the daemon's process, by protocol; it is not the provider's workload).
- ``ForeignStamp(source, counts)``: the rental's telemetry source with each sample stamped with
  its GPU's ``foreign_process_count`` from the latest confirmed poll. That count is signed in the
  batch (docs/protocol.md, "Telemetry batches"), so the nodes leave those intervals unbilled and
  file a FOREIGN_PROCESS fault: the evidence is the agent's own signed word.

A process whose cgroup cannot be read (it exited between the two reads) counts as foreign only
if it is still listed on the next poll; the caller passes ``None`` for an unreadable PID and
this module treats it as outside every container, so callers should confirm over two polls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterable, Mapping

FOREIGN_PROCESS_KIND = 7  # SPEC: fault kind 7, slashable

_CONTAINER_ID = re.compile(r"(?:/docker/|docker-|cri-containerd-|/containerd/|libpod-)([0-9a-f]{64})")


@dataclass(frozen=True, slots=True)
class GpuProcess:
    """A process NVML lists on a GPU (``pid`` in the host's PID namespace)."""

    gpu_uuid: str
    pid: int
    used_memory_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class ForeignUse:
    """A process on a rented GPU outside the container the GPU is rented to."""

    gpu_uuid: str
    pid: int
    container_id: str | None  # the process's own container, None for a host process
    expected_container_id: str
    used_memory_bytes: int | None = None

    @property
    def detail(self) -> str:
        where = f"container {self.container_id[:12]}" if self.container_id else "the host"
        return (f"pid {self.pid} in {where} uses GPU {self.gpu_uuid} rented to container "
                f"{self.expected_container_id[:12]}")


def container_id_from_cgroup(text: str) -> str | None:
    """The 64-hex Docker/containerd container id in a ``/proc/<pid>/cgroup`` file, or None."""
    for line in text.splitlines():
        match = _CONTAINER_ID.search(line)
        if match:
            return match.group(1)
    return None


def foreign_gpu_use(
    processes: Iterable[GpuProcess],
    container_of_pid: Mapping[int, str | None],
    owner_of_gpu: Mapping[str, str],
    allowed_pids: frozenset[int] = frozenset(),
) -> list[ForeignUse]:
    """Every process on a rented GPU that is not in the container that GPU is rented to.

    ``owner_of_gpu`` maps each rented GPU's UUID to its rental's container id; GPUs not in it
    are not rented (anything may run there). ``container_of_pid`` maps host PIDs to container
    ids (None: a host process or unreadable). Sorted by (GPU, PID), so the result is the same
    whatever order NVML listed the processes in.
    """
    out = []
    for proc in processes:
        expected = owner_of_gpu.get(proc.gpu_uuid)
        if expected is None or proc.pid in allowed_pids:
            continue
        actual = container_of_pid.get(proc.pid)
        if actual is not None and actual == expected:
            continue
        out.append(ForeignUse(proc.gpu_uuid, proc.pid, actual, expected, proc.used_memory_bytes))
    return sorted(out, key=lambda f: (f.gpu_uuid, f.pid))


def read_gpu_processes(nvml: ModuleType, handles: Mapping[str, object]) -> list[GpuProcess]:
    """Compute and graphics processes on each GPU (``handles``: UUID -> NVML handle)."""
    out: dict[tuple[str, int], GpuProcess] = {}
    for uuid, handle in handles.items():
        for query in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            fn = getattr(nvml, query, None)
            if fn is None:
                continue
            for info in fn(handle):
                used = getattr(info, "usedGpuMemory", None)
                out.setdefault((uuid, int(info.pid)), GpuProcess(uuid, int(info.pid),
                                                                  None if used is None else int(used)))
    return list(out.values())


def cgroup_reader(proc_root: str | Path = "/proc") -> Callable[[int], str | None]:
    """``pid -> container id`` from ``<proc_root>/<pid>/cgroup`` (None if host or gone)."""
    root = Path(proc_root)

    def read(pid: int) -> str | None:
        try:
            return container_id_from_cgroup((root / str(pid) / "cgroup").read_text())
        except OSError:
            return None

    return read


class ForeignProcessWatch:
    """Polls NVML's process lists for the rented GPUs and reports foreign use seen on two
    consecutive polls (a process that exits between the NVML read and the cgroup read is not
    a fault)."""

    def __init__(self, nvml: ModuleType, *, proc_root: str | Path = "/proc",
                 allowed_pids: frozenset[int] = frozenset()) -> None:
        self.nvml = nvml
        self.allowed_pids = allowed_pids
        self._container_of = cgroup_reader(proc_root)
        self._previous: set[tuple[str, int]] = set()
        self._handles: dict[str, object] = {}

    def _handle(self, uuid: str) -> object:
        if uuid not in self._handles:
            self._handles[uuid] = self.nvml.nvmlDeviceGetHandleByUUID(uuid)
        return self._handles[uuid]

    def poll(self, owner_of_gpu: Mapping[str, str]) -> list[ForeignUse]:
        handles = {uuid: self._handle(uuid) for uuid in owner_of_gpu}
        processes = read_gpu_processes(self.nvml, handles)
        found = foreign_gpu_use(processes, {p.pid: self._container_of(p.pid) for p in processes}, owner_of_gpu,
                                self.allowed_pids)
        keys = {(f.gpu_uuid, f.pid) for f in found}
        confirmed = [f for f in found if (f.gpu_uuid, f.pid) in self._previous]
        self._previous = keys
        return confirmed


def foreign_counts(found: Iterable[ForeignUse]) -> dict[str, int]:
    """Confirmed foreign processes per GPU UUID (what the next samples of that GPU carry)."""
    counts: dict[str, int] = {}
    for use in found:
        counts[use.gpu_uuid] = counts.get(use.gpu_uuid, 0) + 1
    return counts


class ForeignStamp:
    """A telemetry source whose samples carry ``foreign_process_count``: ``counts()`` gives the
    latest count per GPU index (the caller's attribution poll), capped at the wire's maximum.
    Everything else (``gpus``, ``finished``, ``close``) is the wrapped source's."""

    def __init__(self, source: object, counts: Callable[[], Mapping[int, int]]) -> None:
        self.source = source
        self.counts = counts

    def gpus(self) -> list:
        return self.source.gpus()  # type: ignore[attr-defined]

    def read(self) -> list:
        from oracle.telemetry.batches import SAMPLE_RANGES

        cap = SAMPLE_RANGES["foreign_process_count"][1]
        counts = self.counts()
        return [replace(s, foreign_process_count=min(counts[s.gpu], cap)) if counts.get(s.gpu) else s
                for s in self.source.read()]  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self.source, name)
