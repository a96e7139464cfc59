"""A Docker daemon and an image for dev mode (the demo, the provider tests), without a registry.

- ``find_docker()``: a Docker daemon to use, in order: ``$DOCKER_HOST`` / the default socket when
  one answers; else, as root with Debian's ``docker.io`` installed, a private ``dockerd`` this
  process starts (``PrivateDockerd``: ``--storage-driver vfs --iptables=false --bridge=none``, its
  own socket and data root under /tmp, so it touches nothing of the host's); else the one-line
  reason there is none (never a fallback that runs the workload unconfined).
- ``busybox_rootfs_tar()`` / ``ensure_busybox_image()``: an image made with ``docker import`` from
  a root filesystem holding only a statically linked busybox and its applet links.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import struct
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from oracle.provider import ProviderError

BUSYBOX_IMAGE = "gpurent-dev-busybox:latest"
BUSYBOX_APPLETS = ("sh", "ls", "cat", "echo", "sleep", "ps", "id", "hostname", "mkdir", "pwd", "wc", "grep",
                   "test", "true", "false", "env", "kill", "head", "tail", "touch", "rm", "uname", "date", "seq")
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


def is_static_elf(path: str | Path) -> bool:
    """A 64-bit ELF without a PT_INTERP header: it needs no loader or libc inside the image."""
    with open(path, "rb") as f:
        head = f.read(64)
        if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def static_busybox() -> Path | None:
    """``$GPURENT_BUSYBOX`` or Debian's busybox-static, if it is a static binary."""
    for candidate in (os.environ.get("GPURENT_BUSYBOX", ""), *BUSYBOX_CANDIDATES):
        if candidate and Path(candidate).is_file() and is_static_elf(candidate):
            return Path(candidate)
    return None


def busybox_rootfs_tar(busybox: str | Path, applets: tuple[str, ...] = BUSYBOX_APPLETS) -> bytes:
    """A root filesystem (tar) holding only ``busybox``, its applet links and root's passwd line."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "tmp", "root", "etc", "proc", "sys", "dev"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        tar.add(str(busybox), arcname="bin/busybox")
        for applet in applets:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        passwd = b"root:x:0:0:root:/root:/bin/sh\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size = len(passwd)
        tar.addfile(info, io.BytesIO(passwd))
    return buf.getvalue()


def ensure_busybox_image(client: Any, image: str = BUSYBOX_IMAGE, busybox: str | Path | None = None) -> str:
    """``image`` in ``client``'s Docker, imported from a busybox root filesystem if absent."""
    import docker

    try:
        client.images.get(image)
        return image
    except docker.errors.ImageNotFound:
        pass
    busybox = busybox or static_busybox()
    if busybox is None:
        raise ProviderError("no statically linked busybox to build the dev image from "
                            "(apt-get install busybox-static, or set GPURENT_BUSYBOX)")
    repository, tag = image.split(":")
    client.api.import_image_from_data(busybox_rootfs_tar(busybox), repository=repository, tag=tag)
    return image


def ping(url: str | None, timeout_s: float = 3.0) -> bool:
    """Whether a Docker daemon answers at ``url`` (None: ``$DOCKER_HOST`` or the default socket)."""
    try:
        import docker

        client = docker.DockerClient(base_url=url, timeout=timeout_s) if url else docker.from_env(timeout=timeout_s)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@dataclass
class PrivateDockerd:
    """A ``dockerd`` of this process's own (root only), on its own socket and data root."""

    root: Path
    proc: subprocess.Popen
    url: str

    @classmethod
    def start(cls, dockerd: str = "dockerd", timeout_s: float = 60.0) -> PrivateDockerd:
        root = Path(tempfile.mkdtemp(prefix="gpurent-dockerd-", dir="/tmp"))  # a socket path has ~100 chars
        sock, log = root / "docker.sock", root / "dockerd.log"
        proc = subprocess.Popen(
            [dockerd, "--storage-driver", "vfs", "--iptables=false", "--bridge=none", "--host", f"unix://{sock}",
             "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
             "--pidfile", str(root / "dockerd.pid")],
            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        self = cls(root, proc, f"unix://{sock}")
        deadline = time.monotonic() + timeout_s
        while not ping(self.url, timeout_s=2):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
                self.stop()
                raise ProviderError(f"dockerd did not start (exit {proc.returncode}): {tail}")
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        """Remove every container, stop dockerd and delete its data root."""
        if self.proc.poll() is None:
            try:
                import docker

                client = docker.DockerClient(base_url=self.url, timeout=30)
                for container in client.containers.list(all=True, ignore_removed=True):
                    container.remove(force=True)
                client.close()
            except Exception:
                pass
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass(frozen=True)
class DockerChoice:
    """Where a Docker daemon is (``url``; None with ``start_private``: start one) or why there is none."""

    url: str | None = None
    start_private: bool = False
    unavailable: str | None = None


def choose_docker(*, answers: Callable[[str | None], bool] = ping, euid: int | None = None,
                  which: Callable[[str], str | None] = shutil.which) -> DockerChoice:
    """A running daemon ($DOCKER_HOST or the default socket), else a private dockerd as root, else why not."""
    if answers(None):
        return DockerChoice(url=os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock")
    euid = os.geteuid() if euid is None else euid
    if which("dockerd") is None:
        return DockerChoice(unavailable="no Docker daemon answers and dockerd is not installed "
                                        "(apt-get install docker.io)")
    if euid != 0:
        return DockerChoice(unavailable="no Docker daemon answers and starting dockerd needs root "
                                        "(run as root, or start Docker and set DOCKER_HOST)")
    return DockerChoice(start_private=True)
