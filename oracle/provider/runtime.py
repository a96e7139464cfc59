"""Renters' containers through the Docker Engine API (the ``docker`` SDK).

What every rental container gets (``container_settings``, a pure function, tested without
Docker):
- only the rented GPUs, by NVML UUID (a ``DeviceRequest`` for the ``nvidia`` driver), never
  ``--gpus all``, and ``NVIDIA_VISIBLE_DEVICES`` pinned to the same UUIDs (an image's ``ENV
  NVIDIA_VISIBLE_DEVICES=all`` is overridden; renters may not set ``NVIDIA_*``); where Docker has no NVIDIA runtime the daemon refuses (``check_gpu_support``)
  unless ``allow_cpu_only`` (dev mode, no GPU at all) is set;
- CPU (``nano_cpus``), memory (no extra swap), PID and (where the storage driver supports it)
  disk limits scaled by the rented GPU count;
- no mounts, no volumes, no devices besides the GPUs, not privileged, ``no-new-privileges``,
  ``NET_RAW``/``MKNOD``/``AUDIT_WRITE`` dropped, its own PID and IPC namespaces: a rental cannot
  see another rental's files or processes;
- network ``none`` or the host's (config; no bridge);
- labels that name the market, chain, rental and GPUs, so a restarted daemon re-adopts it.
"""

from __future__ import annotations

import io
import logging
import tarfile
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from oracle.provider import NoGpuRuntimeError, ProviderError
from oracle.provider.config import DockerSettings
from oracle.provider.workload import WorkloadSpec

log = logging.getLogger(__name__)

LABEL_MANAGED = "io.gpurent.managed"
LABEL_CHAIN = "io.gpurent.chain-id"
LABEL_MARKET = "io.gpurent.market"
LABEL_RENTAL = "io.gpurent.rental-id"
LABEL_GPUS = "io.gpurent.gpu-uuids"
LABEL_WORKLOAD = "io.gpurent.workload-hash"
DROPPED_CAPS = ["NET_RAW", "MKNOD", "AUDIT_WRITE", "SETFCAP", "SYS_CHROOT"]


def check_gpu_support(info: dict[str, Any], *, allow_cpu_only: bool) -> bool:
    """True if Docker can give containers NVIDIA GPUs; raises unless ``allow_cpu_only``."""
    runtimes = set((info.get("Runtimes") or {}).keys())
    if "nvidia" in runtimes:
        return True
    if allow_cpu_only:
        log.warning("DEV MODE: Docker has no NVIDIA runtime (runtimes: %s); containers run WITHOUT GPUs",
                    ", ".join(sorted(runtimes)) or "none")
        return False
    raise NoGpuRuntimeError(
        "Docker has no NVIDIA runtime (runtimes: " + (", ".join(sorted(runtimes)) or "none") + "): install the "
        "NVIDIA Container Toolkit and run `nvidia-ctk runtime configure --runtime=docker` (README, provider "
        "set-up). The daemon refuses to run renters' workloads without GPU isolation; docker.allow_cpu_only "
        "(dev mode) runs CPU-only containers for tests and demos.")


def container_name(chain_id: int, rental_id: int) -> str:
    return f"gpurent-{chain_id}-rental-{rental_id}"


def container_settings(*, chain_id: int, market: str, rental_id: int, spec: WorkloadSpec, gpu_uuids: Sequence[str],
                       gpu_count: int, docker: DockerSettings, gpus_enabled: bool) -> dict[str, Any]:
    """Keyword arguments for ``docker.containers.create`` (pure)."""
    from docker.types import DeviceRequest

    scale = max(1, gpu_count)
    memory_bytes = docker.memory_mib_per_gpu * scale * 1024 * 1024
    env = dict(spec.env)
    env["GPURENT_RENTAL_ID"] = str(rental_id)
    # The NVIDIA runtime also honours this variable (an image such as nvidia/cuda sets it to "all"):
    # it is pinned to the rented GPUs, or to none, whatever the image says.
    env["NVIDIA_VISIBLE_DEVICES"] = ",".join(gpu_uuids) if gpus_enabled and gpu_uuids else "void"
    kwargs: dict[str, Any] = {
        "image": spec.image,
        "command": spec.command(),
        "environment": env,
        "name": container_name(chain_id, rental_id),
        "hostname": f"rental-{rental_id}",
        "labels": {
            LABEL_MANAGED: "1", LABEL_CHAIN: str(chain_id), LABEL_MARKET: market.lower(),
            LABEL_RENTAL: str(rental_id), LABEL_GPUS: ",".join(gpu_uuids),
            LABEL_WORKLOAD: "0x" + spec.workload_hash().hex(),
        },
        "network_mode": docker.network,
        "nano_cpus": int(docker.cpus_per_gpu * scale * 1e9),
        "mem_limit": memory_bytes,
        "memswap_limit": memory_bytes,  # no swap beyond the memory limit
        "pids_limit": docker.pids_limit * scale,
        "cap_drop": list(DROPPED_CAPS),
        "security_opt": ["no-new-privileges:true"],
        "privileged": False,
        "ipc_mode": "private",
        "mounts": [],
        "volumes": {},
        "devices": [],
        "restart_policy": {"Name": "no"},
        "detach": True,
        "log_config": {"type": "json-file", "config": {"max-size": "50m", "max-file": "2"}},
    }
    if gpus_enabled:
        kwargs["device_requests"] = [DeviceRequest(driver="nvidia", device_ids=list(gpu_uuids),
                                                   capabilities=[["gpu", "utility", "compute"]])]
    if docker.disk_gib:
        kwargs["storage_opt"] = {"size": f"{docker.disk_gib * scale}G"}
    return kwargs


@dataclass(frozen=True)
class RentalContainer:
    rental_id: int
    container_id: str
    gpu_uuids: tuple[str, ...]
    status: str  # Docker's: created, running, exited...
    workload_hash: str


def _tar_one(name: str, data: bytes, mode: int = 0o600) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), mode
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class DockerRuntime:
    """The daemon's handle on Docker for one market on one chain."""

    def __init__(self, settings: DockerSettings, *, chain_id: int, market: str, client: Any = None) -> None:
        import docker

        self.settings = settings
        self.chain_id = chain_id
        self.market = market
        try:
            self.docker = client or (docker.DockerClient(base_url=settings.base_url) if settings.base_url
                                     else docker.from_env())
            info = self.docker.info()
        except docker.errors.DockerException as exc:
            raise ProviderError(f"cannot reach Docker ({settings.base_url or 'DOCKER_HOST/default socket'}): {exc}") from None
        self.gpus_enabled = check_gpu_support(info, allow_cpu_only=settings.allow_cpu_only)

    # -- lifecycle -------------------------------------------------------------------------------

    def run(self, rental_id: int, spec: WorkloadSpec, gpu_uuids: Sequence[str], gpu_count: int) -> RentalContainer:
        """Create, provision (the renter's SSH key) and start the rental's container."""
        import docker

        kwargs = container_settings(chain_id=self.chain_id, market=self.market, rental_id=rental_id, spec=spec,
                                    gpu_uuids=gpu_uuids, gpu_count=gpu_count, docker=self.settings,
                                    gpus_enabled=self.gpus_enabled)
        kwargs.pop("detach")
        try:
            self.docker.images.get(spec.image)
        except docker.errors.ImageNotFound:
            log.info("rental %d: pulling %s", rental_id, spec.image)
            try:
                self.docker.images.pull(spec.image)
            except docker.errors.APIError as exc:
                raise ProviderError(f"image {spec.image} is not available: {exc.explanation or exc}") from None
        try:
            container = self.docker.containers.create(**kwargs)
        except docker.errors.APIError as exc:
            raise ProviderError(f"Docker refused the container for rental {rental_id}: {exc.explanation or exc}") from None
        try:
            if spec.ssh_public_key:
                container.put_archive("/", _tar_one("root/.ssh/authorized_keys", (spec.ssh_public_key + "\n").encode()))
            container.start()
            container.reload()
        except docker.errors.APIError as exc:
            container.remove(force=True)
            raise ProviderError(f"rental {rental_id}: the container did not start: {exc.explanation or exc}") from None
        return self._describe(container)

    def _describe(self, container: Any) -> RentalContainer:
        labels = container.labels
        return RentalContainer(int(labels[LABEL_RENTAL]), container.id,
                               tuple(g for g in labels.get(LABEL_GPUS, "").split(",") if g),
                               container.status, labels.get(LABEL_WORKLOAD, ""))

    def adopt(self) -> dict[int, RentalContainer]:
        """Every container this daemon started for this market (after a restart: re-adopted)."""
        found = self.docker.containers.list(all=True, filters={"label": [
            f"{LABEL_MANAGED}=1", f"{LABEL_CHAIN}={self.chain_id}", f"{LABEL_MARKET}={self.market.lower()}"]})
        return {c.rental_id: c for c in (self._describe(x) for x in found)}

    def container(self, rental_id: int) -> Any:
        import docker

        try:
            return self.docker.containers.get(container_name(self.chain_id, rental_id))
        except docker.errors.NotFound:
            raise ProviderError(f"rental {rental_id} has no container on this host") from None

    def remove(self, rental_id: int) -> bool:
        """Stop and remove the rental's container; False if there was none."""
        import docker

        try:
            container = self.docker.containers.get(container_name(self.chain_id, rental_id))
        except docker.errors.NotFound:
            return False
        try:
            container.stop(timeout=self.settings.stop_timeout_s)
        except docker.errors.APIError as exc:
            log.warning("rental %d: stop failed (%s); removing by force", rental_id, exc)
        container.remove(force=True)
        return True

    # -- renter access ---------------------------------------------------------------------------

    def exec(self, rental_id: int, cmd: Sequence[str], workdir: str | None = None) -> tuple[int, bytes, bytes]:
        container = self.container(rental_id)
        if container.status != "running":
            container.reload()
            if container.status != "running":
                raise ProviderError(f"rental {rental_id}'s container is {container.status}, not running")
        result = container.exec_run(list(cmd), demux=True, workdir=workdir or None)
        out, err = result.output if result.output else (None, None)
        return int(result.exit_code), out or b"", err or b""

    def open_shell(self, rental_id: int) -> Any:
        """A login shell on a TTY in the container; returns the raw socket of its stdin/stdout."""
        container = self.container(rental_id)
        shell = "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi"
        exec_id = self.docker.api.exec_create(container.id, ["sh", "-c", shell], stdin=True, tty=True,
                                              environment={"TERM": "xterm-256color"})["Id"]
        sock = self.docker.api.exec_start(exec_id, socket=True, tty=True)
        return getattr(sock, "_sock", sock)

    def logs(self, rental_id: int, *, follow: bool, tail: int | None = None) -> Iterator[bytes]:
        container = self.container(rental_id)
        kwargs: dict[str, Any] = {"stream": True, "follow": follow}
        if tail is not None:
            kwargs["tail"] = tail
        return container.logs(**kwargs)

    def put_archive(self, rental_id: int, path: str, tar_bytes: bytes) -> None:
        import docker

        try:
            if not self.container(rental_id).put_archive(path, tar_bytes):
                raise ProviderError(f"could not copy into {path}")
        except docker.errors.APIError as exc:
            raise ProviderError(f"copy into {path} failed: {exc.explanation or exc}") from None

    def get_archive(self, rental_id: int, path: str) -> Iterator[bytes]:
        import docker

        try:
            stream, _stat = self.container(rental_id).get_archive(path)
        except docker.errors.NotFound:
            raise ProviderError(f"{path} does not exist in the container") from None
        except docker.errors.APIError as exc:
            raise ProviderError(f"copy from {path} failed: {exc.explanation or exc}") from None
        return stream
