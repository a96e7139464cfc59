"""A local market on anvil and the provider daemon as a real subprocess, for the scenario tests.

Everything chain-side goes through the `gpurent` CLI in-process (as a person would type it);
the daemon runs as `gpurent provider serve --config provider.toml` in its own process so a test
can SIGKILL it. Its NVML is the stand-in of tests/e2e/fake_nvml (two GPUs, a steady draw).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from oracle.chain.anvil import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
FAKE_NVML = REPO_ROOT / "tests" / "e2e" / "fake_nvml"
FAKE_GPUS = ["GPU-fake-h100-0", "GPU-fake-h100-1"]
PASSWORD = "provider-test-password-1"


def gpurent(rpc: str, deployments: Path, *args: str, dev: int | None = None, expect: int = 0,
            json_out: bool = True, input: str | None = None) -> Any:
    from oracle.cli.main import main

    options = ["--rpc", rpc, "--deployments", str(deployments)]
    if json_out:
        options.append("--json")
    if dev is not None:
        options += ["--dev-account", str(dev)]
    split = args.index("--") if "--" in args else len(args)  # options go before `-- CMD...`
    argv = list(args[:split]) + options + list(args[split:])
    result = CliRunner().invoke(main, argv, catch_exceptions=False, input=input)
    assert result.exit_code == expect, f"gpurent {' '.join(args)} exited {result.exit_code}:\n{result.output}"
    return json.loads(result.output) if expect == 0 and json_out else result.output


@dataclass
class DaemonProcess:
    config_path: Path
    log_path: Path
    url: str
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    starts: int = field(default=0)

    def start(self, timeout_s: float = 60.0) -> "DaemonProcess":
        import httpx

        self.starts += 1
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "oracle.cli.main", "provider", "serve", "--config", str(self.config_path)],
            env=self.env, stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"daemon did not serve {self.url} within {timeout_s} s:\n{self.log()[-3000:]}")

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def write_keys(state: Path) -> tuple[Path, Path, Path, str]:
    """The provider's wallet (anvil dev account 1) and a fresh agent key, in keystores."""
    from oracle.keys import CHEAPEST_ACCEPTED_KDF, new_keystore
    from oracle.localchain import dev_key

    password_file = state / "password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    wallet = state / "provider.json"
    new_keystore(wallet, PASSWORD, private_key=bytes.fromhex(dev_key(1)[2:]), **CHEAPEST_ACCEPTED_KDF)
    agent = state / "agent.json"
    agent_address = new_keystore(agent, PASSWORD, **CHEAPEST_ACCEPTED_KDF)
    return password_file, wallet, agent, agent_address


def write_config(state: Path, *, rpc: str, deployment: dict[str, Any], docker_url: str, nodes: list[str],
                 password_file: Path, wallet: Path, agent: Path, port: int, extra: str = "",
                 challenges: str = "off") -> Path:
    gpus = "\n".join(f'[[gpus]]\nindex = {i}\nuuid = "{u}"\n' for i, u in enumerate(FAKE_GPUS))
    text = f"""
rpc_url = "{rpc}"
chain_id = {deployment["chain_id"]}
market_address = "{deployment["market"]}"
start_block = {deployment["block_number"]}
confirmations = 0
poll_interval_s = 0.3
keystore_path = "{wallet}"
keystore_password_file = "{password_file}"
agent_keystore_path = "{agent}"
agent_keystore_password_file = "{password_file}"
dev = true
state_dir = "{state / 'daemon'}"
listen_host = "127.0.0.1"
listen_port = {port}
nodes = {json.dumps(nodes)}
{extra}
{gpus}
[docker]
base_url = "{docker_url}"
network = "none"
cpus_per_gpu = 0.5
memory_mib_per_gpu = 128
pids_limit = 64
allow_cpu_only = true
stop_timeout_s = 1

[telemetry]
source = "nvml"
sample_hz = 2
batch_samples = 2
foreign_process_poll_s = 1
challenges = "{challenges}"
"""
    path = state / "provider.toml"
    path.write_text(text)
    return path


def daemon_env(state: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(FAKE_NVML), str(REPO_ROOT), env.get("PYTHONPATH", "")])
    env["GPURENT_HOME"] = str(state / "home")
    env["GPURENT_FAKE_NVML_PROCESSES"] = str(state / "gpu-processes.txt")  # what the stand-in NVML lists
    return env


def make_daemon(state: Path, **kwargs: Any) -> DaemonProcess:
    port = free_port()
    config = write_config(state, port=port, **kwargs)
    return DaemonProcess(config, state / "daemon.log", f"http://127.0.0.1:{port}", daemon_env(state))


def wait_for(what: str, predicate: Any, timeout_s: float = 30.0, log: Any = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{log()[-3000:]}" if log else ""))


def node_keys(state: Path, count: int = 3) -> list[tuple[Path, str]]:
    from oracle.keys import CHEAPEST_ACCEPTED_KDF, new_keystore

    return [(state / f"node-{i + 1}.json",
             new_keystore(state / f"node-{i + 1}.json", PASSWORD, **CHEAPEST_ACCEPTED_KDF))
            for i in range(count)]


def start_nodes(state: Path, *, rpc: str, deployment: dict[str, Any], keys: list[tuple[Path, str]],
                password_file: Path, challenges: str = "off") -> tuple[list[subprocess.Popen], list[str]]:
    """The attestation nodes as `gpurent oracle run` processes that follow the chain and settle
    by themselves (the demo's configuration); their keys get gas money first."""
    import httpx

    from oracle.localchain import _rpc

    for _, address in keys:
        _rpc(rpc, "anvil_setBalance", [address, hex(10**20)])
    ports = [free_port() for _ in keys]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    procs = []
    for i, ((keystore, _), port) in enumerate(zip(keys, ports)):
        config = {
            "keystore_path": str(keystore), "keystore_password_file": str(password_file),
            "chain_id": deployment["chain_id"], "market_address": deployment["market"],
            "signer_set_version": deployment["signer_set"]["version"],
            "db_path": str(state / f"node-{i + 1}.sqlite3"), "host": "127.0.0.1", "port": port,
            "peers": [u for j, u in enumerate(urls) if j != i], "rpc_url": rpc, "self_url": urls[i],
            "chain_start_block": deployment["block_number"], "confirmations": 0, "chain_poll_interval_s": 0.25,
            "settle_interval_s": 2, "submit_stagger_s": 1, "log_level": "info",
            "settle_max_interval_s": 2,  # settle every round (a real node waits until the gas is worth it)
            "challenges": challenges, **({"dev_mode": True} if challenges == "dev" else {}),
        }
        path = state / f"node-{i + 1}.config.json"
        path.write_text(json.dumps(config))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "oracle.cli.main", "oracle", "run", "--config", str(path)],
            env=daemon_env(state), stdout=open(state / f"node-{i + 1}.log", "ab"), stderr=subprocess.STDOUT,
            start_new_session=True))
    for url, proc in zip(urls, procs):
        wait_for(f"node {url}", lambda: proc.poll() is None and _healthy(httpx, url), timeout_s=60,
                 log=lambda: (state / "node-1.log").read_text(errors="replace"))
    return procs, urls


def _healthy(httpx: Any, url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).json().get("chain", {}).get("state") == "following"
    except Exception:
        return False


def stop_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)

