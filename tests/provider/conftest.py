"""Fixtures for the provider daemon's tests: a real Docker daemon and a registry-free image.

``docker_url`` starts Debian's ``dockerd`` (installed by ``tools/setup.sh`` when run as root) on
a private socket and data root, the way it runs on a CI machine without a bridge or iptables:
``dockerd --storage-driver vfs --iptables=false --bridge=none``. ``GPURENT_DOCKER_HOST`` uses a
daemon already running instead. ``busybox_image`` is made with ``docker import`` from a
``busybox-static`` root filesystem (no registry needed). Under ``make test`` a missing dockerd
is a failure (the root conftest turns skips into failures), never a quiet pass.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE = "gpurent-test-busybox:latest"
BUSYBOX_APPLETS = ["sh", "ls", "cat", "echo", "sleep", "ps", "id", "hostname", "mkdir", "pwd", "wc", "grep",
                   "test", "true", "false", "env", "kill", "head", "tail", "touch", "rm"]
os.environ["PATH"] = os.pathsep.join([str(REPO_ROOT / "node_modules" / ".bin"), str(REPO_ROOT / ".venv" / "bin"),
                                      os.environ.get("PATH", "")])


def _wait_ping(url: str, proc: subprocess.Popen | None, log: Path, timeout_s: float = 60.0) -> None:
    import docker

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"dockerd exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            docker.DockerClient(base_url=url, timeout=5).ping()
            return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"dockerd did not answer on {url} within {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def docker_url(tmp_path_factory: pytest.TempPathFactory):
    given = os.environ.get("GPURENT_DOCKER_HOST")
    if given:
        yield given
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        pytest.skip("dockerd not installed (as root, tools/setup.sh installs Debian's docker.io)")
    if os.geteuid() != 0:
        pytest.skip("dockerd needs root (set GPURENT_DOCKER_HOST to use a running Docker daemon)")
    root = Path(f"/tmp/gpurent-dockerd-{os.getpid()}")  # short: a unix socket path has ~100 chars
    root.mkdir(parents=True, exist_ok=True)
    sock, log = root / "docker.sock", root / "dockerd.log"
    proc = subprocess.Popen(
        [dockerd, "--storage-driver", "vfs", "--iptables=false", "--bridge=none", "--host", f"unix://{sock}",
         "--data-root", str(root / "data"), "--exec-root", str(root / "exec"), "--pidfile", str(root / "dockerd.pid")],
        stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"unix://{sock}"
    try:
        _wait_ping(url, proc, log)
        yield url
    finally:
        try:
            import docker

            client = docker.DockerClient(base_url=url, timeout=30)
            for container in client.containers.list(all=True):
                container.remove(force=True)
        except Exception:
            pass
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def _is_static_elf(path: str) -> bool:
    """No PT_INTERP program header: the binary needs no loader or libc inside the image."""
    import struct

    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def busybox_rootfs_tar() -> bytes:
    """A root filesystem holding only busybox-static and its applet links."""
    candidates = [os.environ.get("GPURENT_BUSYBOX", ""), "/bin/busybox", "/usr/bin/busybox"]
    busybox = next((p for p in candidates if p and Path(p).is_file() and _is_static_elf(p)), None)
    if busybox is None:
        pytest.skip("no statically linked busybox (tools/setup.sh installs busybox-static as root)")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "tmp", "root", "etc", "proc", "sys", "dev"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in BUSYBOX_APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        passwd = b"root:x:0:0:root:/root:/bin/sh\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size = len(passwd)
        tar.addfile(info, io.BytesIO(passwd))
    return buf.getvalue()


@pytest.fixture(scope="session")
def busybox_image(docker_url: str) -> str:
    import docker

    client = docker.DockerClient(base_url=docker_url, timeout=60)
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        repository, tag = IMAGE.split(":")
        client.api.import_image_from_data(busybox_rootfs_tar(), repository=repository, tag=tag)
    return IMAGE


@pytest.fixture
def docker_client(docker_url: str):
    """A client of the test dockerd; every container is removed after the test, whatever happened
    (a fresh anvil redeploys the market at the same address, so a leftover would be re-adopted)."""
    import docker

    client = docker.DockerClient(base_url=docker_url, timeout=60)
    yield client
    for container in client.containers.list(all=True):
        container.remove(force=True)
    client.close()


@pytest.fixture
def market(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh anvil (the `gpurent chain start` kind) and where its deployment file goes; the
    user's ~/.gpurent and GPURENT_* settings are kept out of the test."""
    from oracle.chain.anvil import free_port
    from oracle.localchain import LocalChain

    monkeypatch.setenv("GPURENT_HOME", str(tmp_path / "home"))
    for name in ("GPURENT_RPC_URL", "GPURENT_KEYSTORE", "GPURENT_DEV_ACCOUNT", "GPURENT_PROVIDER_URL"):
        monkeypatch.delenv(name, raising=False)
    if shutil.which("anvil") is None:
        pytest.skip("anvil not installed (make setup)")
    local = LocalChain(tmp_path / "chain")
    state = local.start(port=free_port())
    try:
        yield state.url, tmp_path / "deployments.json"
    finally:
        local.stop()
