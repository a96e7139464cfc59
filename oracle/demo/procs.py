"""The demo's processes: its own anvil, encrypted keys, telemetry source choice, and stopping
what it started."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oracle.demo.base import REPO_ROOT, DemoError, DemoOptions, Ui


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_chain(chain: Any, ui: Ui, tries: int = 3) -> str:
    """A fresh anvil of the demo's own on a free port (never one already running there); its clock
    starts 15 minutes back, so a time-compressed rental can start in the past."""
    from oracle.errors import ChainError

    for attempt in range(tries):
        port = _free_port()
        if attempt == 0:
            ui.step("starting a local anvil chain", f"gpurent chain start --port {port}")
        try:
            return chain.start(port=port, timestamp=int(time.time()) - 900).url
        except ChainError as exc:  # the port was taken between the check and anvil's bind
            if attempt == tries - 1:
                raise DemoError(f"could not start a local anvil on a free port ({exc}); see {chain.state_dir}") from None
            ui.note(f"port {port}: {exc}; trying another")
            chain.stop()
    raise AssertionError("unreachable")


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 40.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise DemoError(f"process exited with {proc.returncode} before serving {url}; log {log}:\n{tail}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise DemoError(f"{url} did not answer within {timeout_s:.0f} s; see {log}")


def _stop(proc: subprocess.Popen | None, timeout_s: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout_s)


@dataclass
class _Processes:
    nodes: list[subprocess.Popen] = field(default_factory=list)
    agent: subprocess.Popen | None = None
    container: Any = None  # oracle.demo.container.RenterContainer

    def stop_all(self) -> None:
        _stop(self.agent)
        if self.container is not None:
            self.container.close()
        for proc in self.nodes:
            _stop(proc)


def _cli_env(state: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["GPURENT_HOME"] = str(state)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return {k: v for k, v in env.items() if not k.startswith("GPURENT_NODE_")}


@dataclass
class DemoKeys:
    """Encrypted keystores of the oracle nodes and of the provider's telemetry agent."""

    password_file: Path
    node_keystores: list[Path]
    node_addresses: list[str]
    agent_keystore: Path
    agent_address: str


def make_keys(state: Path, nodes: int, *, fast_kdf: bool = False) -> DemoKeys:
    """Fresh keys under ``state``, sharing one random password (a file, mode 0600)."""
    from oracle.keys import CHEAPEST_ACCEPTED_KDF, new_keystore

    password = secrets.token_urlsafe(24)
    password_file = state / "keystore-password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    kdf = dict(CHEAPEST_ACCEPTED_KDF) if fast_kdf else {}
    node_keystores = [state / f"node-{i + 1}.json" for i in range(nodes)]
    node_addresses = [new_keystore(path, password, **kdf) for path in node_keystores]
    agent_keystore = state / "agent.json"
    agent_address = new_keystore(agent_keystore, password, **kdf)
    return DemoKeys(password_file, node_keystores, node_addresses, agent_keystore, agent_address)


@dataclass
class _Telemetry:
    use_nvml: bool
    duration_s: float
    backdate_s: float


def _telemetry(options: DemoOptions, ui: Ui) -> _Telemetry:
    from oracle.telemetry.sources.nvml import nvml_gpu_count
    from oracle.telemetry.sources.replay import ReplaySource, backdate_ms

    gpus = nvml_gpu_count() if options.source in ("auto", "nvml") else 0
    if options.source == "nvml" and gpus == 0:
        raise DemoError("--source nvml: NVML sees no GPU on this host")
    if options.source == "nvml" or (options.source == "auto" and gpus > 0):
        ui.step(f"telemetry: NVML, {gpus} GPU(s) on this host, metered live for {options.nvml_seconds:.0f} s")
        return _Telemetry(True, options.nvml_seconds, 0.0)
    if not options.trace.is_file():
        raise DemoError(f"trace not found: {options.trace} (set GPURENT_TRACE_DIR)")
    replay = ReplaySource(options.trace, speed=options.speed, period_ms=1000)
    ui.step(f"telemetry: no GPU here; replaying {options.trace.name} ({replay.duration_ms / 1000:.0f} s of a real "
            f"H100) at {options.speed:g}x")
    return _Telemetry(False, replay.duration_ms / 1000, backdate_ms(replay.duration_ms, options.speed) / 1000)
