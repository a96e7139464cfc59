"""Fixtures for the provider daemon's tests: a real Docker daemon and a registry-free image.

``docker_url`` starts Debian's ``dockerd`` (installed by ``tools/setup.sh`` when run as root) on
a private socket and data root, the way it runs on a CI machine without a bridge or iptables:
``dockerd --storage-driver vfs --iptables=false --bridge=none``. ``GPURENT_DOCKER_HOST`` uses a
daemon already running instead. ``busybox_image`` is made with ``docker import`` from a
``busybox-static`` root filesystem (no registry needed). Under ``make test`` a missing dockerd
is a failure (the root conftest turns skips into failures), never a quiet pass.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE = "gpurent-test-busybox:latest"
os.environ["PATH"] = os.pathsep.join([str(REPO_ROOT / "node_modules" / ".bin"), str(REPO_ROOT / ".venv" / "bin"),
                                      os.environ.get("PATH", "")])


@pytest.fixture(scope="session")
def docker_url():
    given = os.environ.get("GPURENT_DOCKER_HOST")
    if given:
        yield given
        return
    if shutil.which("dockerd") is None:
        pytest.skip("dockerd not installed (as root, tools/setup.sh installs Debian's docker.io)")
    if os.geteuid() != 0:
        pytest.skip("dockerd needs root (set GPURENT_DOCKER_HOST to use a running Docker daemon)")
    from oracle.provider.devdocker import PrivateDockerd

    dockerd = PrivateDockerd.start()
    try:
        yield dockerd.url
    finally:
        dockerd.stop()


@pytest.fixture(scope="session")
def busybox_image(docker_url: str) -> str:
    import docker

    from oracle.provider.devdocker import ensure_busybox_image, static_busybox

    if static_busybox() is None:
        pytest.skip("no statically linked busybox (tools/setup.sh installs busybox-static as root)")
    client = docker.DockerClient(base_url=docker_url, timeout=60)
    try:
        return ensure_busybox_image(client, IMAGE)
    finally:
        client.close()


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
