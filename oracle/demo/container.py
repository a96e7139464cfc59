"""The renter's workload in ``make demo`` (issue 10): the provider daemon runs the renter's command
in a container, and the summary shows its output beside the attested usage.

The demo starts ``gpurent provider serve`` (a subprocess) against its chain, with:
- a Docker daemon from :func:`oracle.provider.devdocker.choose_docker`: the one already running
  (``$DOCKER_HOST`` or the default socket), else, as root, a private ``dockerd --storage-driver
  vfs --iptables=false --bridge=none``; where there is none, one line says why and the rental
  goes on WITHOUT the workload (it is never run unconfined on the host);
- an image made by ``docker import`` from busybox-static (no registry);
- ``accept = "manual"`` and ``telemetry.source = "external"`` (dev mode): the demo starts the
  rental itself (its start is back-dated for the time-compressed replay) and its own agent signs
  the telemetry; the daemon runs the container from the sealed, committed workload once the
  rental is Active, and removes it when the rental ends. Dev mode runs the container CPU-only
  when Docker has no NVIDIA runtime (``docker.allow_cpu_only``), as the daemon's log says.

The renter opens the rental with a workload (what ``gpurent rent open --image … --cmd …
--provider-url …`` does: ``workloadHash`` committed by ``openRental``, the spec sealed to the
offer's agent key and uploaded to the daemon); the demo then reads the container's output
(``gpurent rent logs``) and runs one command in it (``gpurent rent exec``), both as signed renter
requests, and measures the time from ``rent open`` to each.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

RENTER_CMD = ("sh -c 'echo \"renter job running in $(hostname), NVIDIA_VISIBLE_DEVICES=$NVIDIA_VISIBLE_DEVICES\"; "
              "for step in $(seq 1 3); do echo \"step $step: ok\"; sleep 1; done; exec sleep 86400'")
EXEC_CMD = ("sh", "-c", "echo \"shell: $(id -un)@$(hostname), $(uname -sm)\"")
DEMO_GPU_UUID = "GPU-demo-h100-0"


@dataclass
class RenterContainer:
    """The provider daemon of the demo and what the renter saw of its container."""

    url: str
    image: str
    daemon: subprocess.Popen
    log: Path
    close_docker: Callable[[], None]
    renter_key: bytes
    chain_id: int
    market: str
    t_open: float | None = None
    result: dict[str, Any] = field(default_factory=dict)
    _watch: threading.Thread | None = None

    def workload(self) -> Any:
        """The renter's workload spec (the clock for the timings starts here, at ``rent open``)."""
        import shlex

        from oracle.provider.workload import WorkloadSpec

        self.t_open = time.monotonic()
        return WorkloadSpec(image=self.image, cmd=shlex.split(RENTER_CMD))

    def watch(self, rental_id: int, timeout_s: float = 60.0) -> None:
        """In the background (call it once the rental is Active): wait for the container's first
        output, then run one command in it."""
        self.result["t_started"] = time.monotonic()
        self._watch = threading.Thread(target=self._observe, args=(rental_id, timeout_s), name="demo-container",
                                       daemon=True)
        self._watch.start()

    def _observe(self, rental_id: int, timeout_s: float) -> None:
        from oracle.provider.client import ProviderClient

        client = ProviderClient(self.url, self.renter_key, self.chain_id, self.market, timeout_s=20)
        deadline = time.monotonic() + timeout_s
        t_open = self.t_open or time.monotonic()
        try:
            while time.monotonic() < deadline:
                try:
                    text = b"".join(client.logs(rental_id, tail=50)).decode(errors="replace")
                except Exception:  # not running yet
                    text = ""
                if text.strip():
                    self.result["first_output_s"] = round(time.monotonic() - t_open, 2)
                    self.result["start_to_first_output_s"] = round(time.monotonic() - self.result["t_started"], 2)
                    break
                time.sleep(0.5)
            else:
                self.result["error"] = f"no output from the container within {timeout_s:.0f} s; see {self.log}"
                return
            code, out, err = client.exec(rental_id, list(EXEC_CMD))
            self.result["exec_s"] = round(time.monotonic() - t_open, 2)
            self.result["exec"] = {"cmd": " ".join(EXEC_CMD), "exit_code": code,
                                   "output": (out + err).decode(errors="replace").strip()}
            time.sleep(3.5)  # the job's three steps
            self.result["output"] = b"".join(client.logs(rental_id)).decode(errors="replace").strip().splitlines()
        except Exception as exc:
            self.result["error"] = f"{exc}; see {self.log}"
        finally:
            client.close()

    def finish(self, rental_id: int, timeout_s: float = 30.0) -> dict[str, Any]:
        """After the rental ended: the renter's view, and whether the daemon removed the container."""
        if self._watch is not None:
            self._watch.join(timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        removed = False
        while time.monotonic() < deadline:
            if f"rental_ended rental={rental_id}" in self.log.read_text(errors="replace"):
                removed = "container_removed=True" in self.log.read_text(errors="replace")
                break
            time.sleep(0.3)
        result = {k: v for k, v in self.result.items() if k != "t_started"}
        return {"image": self.image, "command": RENTER_CMD, "provider_url": self.url,
                "container_removed": removed, **result}

    def close(self) -> None:
        if self.daemon.poll() is None:
            self.daemon.terminate()
            try:
                self.daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait(timeout=10)
        self.close_docker()


def start_renter_container(state: Path, *, rpc: str, deployment: dict[str, Any], password_file: Path,
                           agent_keystore: Path, provider_key: bytes, renter_key: bytes, env: dict[str, str],
                           gpu_uuid: str = DEMO_GPU_UUID, fast_kdf: bool = False) -> RenterContainer | str:
    """The provider daemon with a Docker daemon and the demo image, or the one line saying why not."""
    from oracle.provider import ProviderError
    from oracle.provider.devdocker import PrivateDockerd, choose_docker, ensure_busybox_image, static_busybox

    choice = choose_docker()
    if choice.unavailable:
        return choice.unavailable
    if static_busybox() is None:
        return "no statically linked busybox for the demo image (apt-get install busybox-static)"
    private = None
    try:
        if choice.start_private:
            private = PrivateDockerd.start()
        docker_url = private.url if private else choice.url
        import docker

        client = docker.DockerClient(base_url=docker_url, timeout=60)
        try:
            image = ensure_busybox_image(client)
        finally:
            client.close()
    except (ProviderError, Exception) as exc:  # noqa: BLE001 - any Docker trouble: say it, go on without
        if private is not None:
            private.stop()
        return f"Docker could not be used ({str(exc).splitlines()[0][:160]})"
    close_docker = private.stop if private is not None else (lambda: None)
    try:
        url, proc, log = _serve(state, rpc=rpc, deployment=deployment, docker_url=docker_url,
                                password_file=password_file, agent_keystore=agent_keystore,
                                provider_key=provider_key, env=env, gpu_uuid=gpu_uuid, fast_kdf=fast_kdf)
    except Exception:
        close_docker()
        raise
    return RenterContainer(url, image, proc, log, close_docker, renter_key, int(deployment["chain_id"]),
                           deployment["market"])


def _serve(state: Path, *, rpc: str, deployment: dict[str, Any], docker_url: str, password_file: Path,
           agent_keystore: Path, provider_key: bytes, env: dict[str, str], gpu_uuid: str,
           fast_kdf: bool) -> tuple[str, subprocess.Popen, Path]:
    """``gpurent provider serve --config provider.toml`` as a subprocess, once it answers."""
    import httpx

    from oracle.chain.anvil import free_port
    from oracle.keys import CHEAPEST_ACCEPTED_KDF, new_keystore

    home = state / "provider-daemon"
    home.mkdir(parents=True, exist_ok=True)
    wallet = home / "provider-wallet.json"
    password = password_file.read_text().splitlines()[0]
    new_keystore(wallet, password, private_key=provider_key, **(dict(CHEAPEST_ACCEPTED_KDF) if fast_kdf else {}))
    port = free_port()
    config = home / "provider.toml"
    config.write_text(f"""# written by `gpurent demo`: the provider daemon runs the renter's workload
rpc_url = {json.dumps(rpc)}
chain_id = {int(deployment["chain_id"])}
market_address = "{deployment["market"]}"
start_block = {int(deployment["block_number"])}
confirmations = 0
poll_interval_s = 0.5
keystore_path = {json.dumps(str(wallet))}
keystore_password_file = {json.dumps(str(password_file))}
agent_keystore_path = {json.dumps(str(agent_keystore))}
agent_keystore_password_file = {json.dumps(str(password_file))}
dev = true
state_dir = {json.dumps(str(home / "state"))}
listen_host = "127.0.0.1"
listen_port = {port}
accept = "manual"  # the demo starts the rental itself (back-dated for the replay)
nodes = ["http://127.0.0.1:9"]  # unused: the demo's own agent sends the telemetry (source = "external")

[[gpus]]
index = 0
uuid = "{gpu_uuid}"

[docker]
base_url = "{docker_url}"
network = "none"
cpus_per_gpu = 1
memory_mib_per_gpu = 256
pids_limit = 64
allow_cpu_only = true
stop_timeout_s = 1

[telemetry]
source = "external"
challenges = "off"
""")
    log = home / "daemon.log"
    proc = subprocess.Popen([sys.executable, "-m", "oracle.cli.main", "provider", "serve", "--config", str(config)],
                            env=env, cwd=str(home), stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the provider daemon exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return url, proc, log
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the provider daemon did not answer within 40 s; see {log}")


def summary_rows(container: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """The summary table's rows about the renter's container."""
    if container is None:
        return []
    if container.get("skipped"):
        return [("renter's container", f"not run: {container['skipped']}", "demo")]
    if container.get("error"):
        return [("renter's container", f"failed: {container['error']}", "provider daemon")]
    output = container.get("output") or []
    cpu_only = bool(output) and output[0].endswith("=void")  # the runtime gave it no GPU (dev mode)
    rows = [("renter's command (container output)", output[0] if output else "(none)",
             f"provider daemon: rent logs ({container['image']}"
             + ("; dev mode: CPU-only container, no NVIDIA runtime here)" if cpu_only else ")"))]
    rows += [("", line, "") for line in output[1:4]]
    if container.get("exec"):
        rows.append(("renter's shell command", container["exec"]["output"], "provider daemon: rent exec"))
    rows.append(("rent open -> first output / shell", f"{container.get('first_output_s', 0):.1f} s / "
                 f"{container.get('exec_s', 0):.1f} s", "wall clock (3 nodes start in between)"))
    rows.append(("rental start -> first output", f"{container.get('start_to_first_output_s', 0):.1f} s",
                 "wall clock"))
    rows.append(("container removed at the end", "yes" if container.get("container_removed") else "no",
                 "provider daemon log"))
    return rows


def open_rental_with_workload(chain: Any, box: RenterContainer, offer: Any, budget: str) -> int:
    """``gpurent rent open OFFER --budget B --image … --cmd … --provider-url …``: open with the
    workload's hash committed on chain, then seal the spec to the offer's agent and upload it."""
    from oracle.actions import rentals
    from oracle.demo.base import RENTER
    from oracle.provider.client import ProviderClient

    spec = box.workload()
    opened = rentals.open_rental(chain.ctx(RENTER), offer.offer_id, chain.units(budget, "budget"),
                                 workload_hash=spec.workload_hash())
    chain.note("rent open", opened.done, opened.approve_tx)
    client = ProviderClient(box.url, box.renter_key, box.chain_id, box.market)
    try:
        client.upload_workload(opened.rental_id, spec, offer.agent)
    finally:
        client.close()
    return opened.rental_id


def for_demo(ui: Any, state: Path, *, rpc: str, deployment: dict[str, Any], password_file: Path,
             agent_keystore: Path, env: dict[str, str], use_nvml: bool,
             fast_kdf: bool = False) -> tuple[RenterContainer | None, str | None]:
    """The demo's step: the daemon and its Docker, or (None, why not) after one line saying so."""
    from oracle.demo.base import PROVIDER, RENTER
    from oracle.localchain import dev_key

    provider_key, renter_key = bytes.fromhex(dev_key(PROVIDER)[2:]), bytes.fromhex(dev_key(RENTER)[2:])
    ui.step("provider daemon: runs the renter's workload in a container (Docker, dev image from busybox-static)",
            "gpurent provider serve --config provider.toml")
    started = start_renter_container(state, rpc=rpc, deployment=deployment, password_file=password_file,
                                     agent_keystore=agent_keystore, provider_key=provider_key,
                                     renter_key=renter_key, env=env, fast_kdf=fast_kdf,
                                     gpu_uuid=_nvml_uuid() if use_nvml else DEMO_GPU_UUID)
    if isinstance(started, str):
        ui.note(f"no container: {started}; the rental goes on without the renter's workload (never run unconfined)")
        return None, started
    ui.note(f"daemon {started.url}, image {started.image}, log {started.log}")
    return started, None


def _nvml_uuid(index: int = 0) -> str:
    try:
        import pynvml

        pynvml.nvmlInit()
        uuid = pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(index))
        return uuid.decode() if isinstance(uuid, bytes) else str(uuid)
    except Exception:
        return DEMO_GPU_UUID
