"""``make demo`` / ``gpurent demo``: one whole rental on a local anvil chain, end to end.

What runs, in order (each chain step is the ``gpurent`` command shown beside it, run in-process):

1. a local anvil (its own state directory, so it never touches a chain you started yourself);
2. four encrypted keystores: three oracle nodes and the provider's telemetry agent;
3. ``gpurent deploy``: GpuRentMarket + TestStablecoin, signer set = the three nodes, threshold 2;
4. ``gpurent provider stake`` and ``gpurent provider offer create`` (an H100 offer);
5. ``gpurent rent open`` with a budget;
6. three attestation nodes as real uvicorn servers (``gpurent oracle run``, subprocesses), each
   given the RPC endpoint and no rentals: they follow the market's events (the deployer's dev
   account sends their keys some ETH first, since they pay settlement gas);
7. ``gpurent provider start``: the nodes learn the rental from its ``RentalStarted`` event; then
   ``gpurent agent run`` (subprocess) on the NVML source where a GPU exists, else replaying the
   real H100 training trace from ``shared/telemetry`` time-compressed; the nodes ingest and meter it;
8. settlement while it runs, by the nodes: every few seconds each node's settlement loop collects
   a quorum (2 of 3) of node signatures on the same cumulative report and submits it with its own
   key (staggered by rank, so usually one pays); the demo only watches ``UsageSettled`` and
   ``UsageBatchSettled`` events (a ``settleBatch`` logs one event for the whole batch);
9. ``gpurent rent end``; the nodes still settle the final report (``periodEnd <= endedAt``, within
   the settlement grace); then ``gpurent provider finalize``, and both sides withdraw;
10. a summary in which every number is read back from the chain or from a node.

Time compression on a local chain. A replay at speed ``s`` of a trace of ``D`` seconds stamps its
samples over the real ``D`` seconds that end "now" (nodes refuse future samples), so the rental
must have started ``D - D/s`` seconds ago. The demo starts anvil with its clock in the past and
sets the timestamp of the ``startRental`` block to that moment (``evm_setNextBlockTimestamp``),
and before ``endRental`` moves the chain clock to the wall clock again. The chain then records
a rental as long as the GPU time in the trace, which is what the nodes attest. On a real
network no clock is touched: the NVML source runs in real time.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from oracle.errors import GpurentError
from oracle.node.settings import LOCAL_CHAIN_IDS
from oracle.traces import TRACE_TRAIN

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRACE = TRACE_TRAIN
GPU_MODEL = "NVIDIA H100 80GB HBM3"

DEPLOYER, PROVIDER, RENTER = 0, 1, 2


class DemoError(GpurentError, RuntimeError):
    """A demo step failed; the message names the step and where its logs are."""


@dataclass
class DemoOptions:
    state_dir: Path = REPO_ROOT / "var" / "demo"
    trace: Path = DEFAULT_TRACE
    speed: float = 8.0
    source: str = "auto"  # auto | replay | nvml
    nvml_seconds: float = 30.0
    nodes: int = 3
    threshold: int = 2
    stop_node_after_s: float | None = None  # stop one node mid-rental (resilience demo)
    settle_interval_s: float = 2.0  # each node's settlement round (node setting settle_interval_s)
    submit_stagger_s: float = 1.0  # node rank x this between finding a quorum and sending it
    price_per_gpu_hour: str = "3.00"
    price_per_kwh: str = "0.20"
    region: str = "SE"
    stake: str = "2000"
    budget: str = "5"
    challenges: bool = True  # proof of GPU at the dev size (numpy agent; docs/protocol.md)
    cheat: bool = False      # the agent answers every challenge wrongly (dev chain only)
    keep_running: bool = False
    fast_kdf: bool = False  # cheap keystore KDF (tests)


@dataclass
class DemoResult:
    summary: dict[str, Any]
    transactions: dict[str, list[str]]
    wall_s: float
    rpc_url: str
    deployments: Path
    cleanup: Callable[[], Any] | None = None  # stops the chain and nodes left by keep_running


class Ui:
    """Progress for a person (rich, on stderr) or nothing (``--json``)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.t0 = time.monotonic()
        self.console = None
        if enabled:
            from oracle.cli.common import console

            self.console = console(stderr=True)

    def step(self, title: str, command: str | None = None) -> None:
        if self.console is None:
            return
        elapsed = time.monotonic() - self.t0
        self.console.print(f"[dim]{elapsed:6.1f}s[/dim] [bold cyan]▸[/bold cyan] {title}")
        if command:
            self.console.print(f"         [dim]$ {command}[/dim]")

    def note(self, text: str) -> None:
        if self.console is not None:
            self.console.print(f"         {text}")

    @contextlib.contextmanager
    def bar(self, title: str, total: float):
        if self.console is None:
            yield lambda completed, description=None: None
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("         {task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TimeElapsedColumn(), console=self.console, transient=False) as progress:
            task = progress.add_task(title, total=total)

            def update(completed: float, description: str | None = None) -> None:
                progress.update(task, completed=completed, **({"description": description} if description else {}))

            yield update


class Gpurent:
    """Runs ``gpurent`` subcommands in-process with ``--json`` and returns their JSON output."""

    def __init__(self, rpc: str, deployments: Path, record: Callable[[str, str], None]) -> None:
        self.rpc = rpc
        self.deployments = deployments
        self.record = record

    def __call__(self, *args: str, dev_account: int | None = None, chain: bool = True) -> Any:
        from oracle.cli.main import main

        argv = list(args)
        if chain:
            argv += ["--rpc", self.rpc, "--deployments", str(self.deployments), "--json"]
        if dev_account is not None:
            argv += ["--dev-account", str(dev_account)]
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                main.main(argv, prog_name="gpurent", standalone_mode=False)
        except Exception as exc:
            message = getattr(exc, "message", None) or str(exc)
            raise DemoError(f"`gpurent {' '.join(args)}` failed: {message}") from None
        data = json.loads(out.getvalue())
        if isinstance(data, dict):
            for key in ("tx", "approve_tx"):
                if data.get(key):
                    self.record(" ".join(args[:2]) + (" (approve)" if key == "approve_tx" else ""), data[key])
        return data


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

    def stop_all(self) -> None:
        _stop(self.agent)
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
    from oracle.cli.agent_cmd import nvml_gpu_count
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


def run_demo(options: DemoOptions, ui: Ui | None = None) -> DemoResult:
    """Run the whole rental on a fresh local anvil; the summary's numbers come from the chain
    and the nodes."""
    from oracle.localchain import LocalChain

    ui = ui or Ui(False)
    started = time.monotonic()
    state = options.state_dir.resolve()
    if state.exists():
        LocalChain(state / "chain").stop()
        shutil.rmtree(state)
    state.mkdir(parents=True)
    chain = LocalChain(state / "chain")
    procs = _Processes()
    txs: dict[str, list[str]] = {}
    try:
        telemetry = _telemetry(options, ui)
        rpc = _start_chain(chain, ui)
        deployments = state / "deployments.json"
        gp = Gpurent(rpc, deployments, lambda label, tx: txs.setdefault(label, []).append(tx))

        ui.step(f"creating encrypted keystores: {options.nodes} oracle nodes + the telemetry agent",
                "gpurent oracle keys new node-1.json")
        keys = make_keys(state, options.nodes, fast_kdf=options.fast_kdf)

        signer_args = [a for address in keys.node_addresses for a in ("--signer", address)]
        ui.step(f"deploying GpuRentMarket + TestStablecoin, oracle quorum {options.threshold} of {options.nodes}",
                f"gpurent deploy --dev-account {DEPLOYER} --signer … --threshold {options.threshold}")
        # A small reputation prior (0.01 tUSD of fees) so the demo's one short rental moves the
        # score; a real market keeps the default (docs/economics.md).
        deployment = gp("deploy", *signer_args, "--threshold", str(options.threshold), "--reputation-prior", "0.01",
                        dev_account=DEPLOYER)
        for label, tx in deployment["transactions"].items():
            txs.setdefault(f"deploy {label}", []).append(tx)
        ui.note(f"market {deployment['market']}  tUSD {deployment['payment_token']}")

        summary = run_rental(gp, deployment, keys, options, state, ui, procs, telemetry)
        result = DemoResult(summary=summary, transactions=txs, wall_s=time.monotonic() - started, rpc_url=rpc,
                            deployments=deployments)
        if options.keep_running:
            result.cleanup = lambda: (procs.stop_all(), chain.stop())
        return result
    finally:
        if options.keep_running:
            _stop(procs.agent)
        else:
            procs.stop_all()
            chain.stop()


def launch_nodes(keys: DemoKeys, deployment: dict[str, Any], rpc: str, state: Path, options: DemoOptions,
                 procs: _Processes) -> tuple[list[str], list[subprocess.Popen], list[Path]]:
    """Start one attestation node per key in ``keys`` (uvicorn subprocesses, configs and logs in
    ``state``) that follow ``deployment`` on ``rpc``; returns once every node follows the chain.
    Also used by the browser tests (tests/web)."""
    env = _cli_env(state)
    local = int(deployment["chain_id"]) in LOCAL_CHAIN_IDS
    confirmations = 0 if local else 1  # 0 only on a local dev chain; elsewhere a block is mined on top
    ports = [_free_port() for _ in keys.node_keystores]
    node_urls = [f"http://127.0.0.1:{p}" for p in ports]
    node_logs = [state / f"node-{i + 1}.log" for i in range(len(ports))]
    first_node = len(procs.nodes)
    for i, (keystore, port_i) in enumerate(zip(keys.node_keystores, ports)):
        config = {
            "keystore_path": str(keystore),
            "keystore_password_file": str(keys.password_file),
            "chain_id": deployment["chain_id"],
            "market_address": deployment["market"],
            "signer_set_version": deployment["signer_set"]["version"],
            "db_path": str(state / f"node-{i + 1}.sqlite3"),
            "host": "127.0.0.1", "port": port_i,
            "peers": [u for j, u in enumerate(node_urls) if j != i],
            "rpc_url": rpc,
            "self_url": node_urls[i],
            "chain_start_block": deployment["block_number"],
            "confirmations": confirmations,
            "chain_poll_interval_s": 0.25,
            "settle_interval_s": options.settle_interval_s,
            "submit_stagger_s": options.submit_stagger_s,
            # settle every round (the interval rule fires at once): the demo shows payments as they
            # accrue; a real node settles when the gas is worth it (settle_max_gas_bps)
            "settle_max_interval_s": max(1, int(options.settle_interval_s)),
            "log_level": "info",
        }
        if options.challenges:  # dev-size challenges, deadlines on the (set back) chain's clock
            config.update({"challenges": "dev", "challenge_clock": "chain", "challenge_check_telemetry": False,
                           "challenge_quorum": options.threshold, "challenge_poll_interval_s": 0.25})
        config_path = state / f"node-{i + 1}.config.json"
        config_path.write_text(json.dumps(config, indent=2))
        procs.nodes.append(subprocess.Popen(
            [sys.executable, "-m", "oracle.cli.main", "oracle", "run", "--config", str(config_path)],
            env=env, cwd=str(state), stdout=open(node_logs[i], "ab"), stderr=subprocess.STDOUT,
            start_new_session=True))
    node_procs = procs.nodes[first_node:]
    for url, proc, log in zip(node_urls, node_procs, node_logs):
        _wait_http(url + "/healthz", proc, log)
    _wait_nodes(node_urls, node_procs, node_logs, "follow the chain", 30.0,
                lambda url: _get_json(url + "/healthz").get("chain", {}).get("state") == "following")
    return node_urls, node_procs, node_logs


def agent_config(rental_id: int, deployment: dict[str, Any], node_urls: Sequence[str], keys: DemoKeys, state: Path,
                 options: DemoOptions, started_at: int, use_nvml: bool = False) -> Path:
    """The telemetry agent's config for ``rental_id`` (replay of ``options.trace`` unless NVML),
    written into ``state``; returns its path."""
    config: dict[str, Any] = {
        "rental_id": rental_id, "chain_id": int(deployment["chain_id"]), "market": deployment["market"],
        "nodes": list(node_urls), "keystore_path": str(keys.agent_keystore),
        "keystore_password_file": str(keys.password_file),
        "spool_path": str(state / f"agent-spool-rental-{rental_id}.sqlite3"),
        "sample_hz": 1.0 if use_nvml else 4.0, "batch_samples": 10,
        "source": ({"kind": "nvml", "indices": [0]} if use_nvml else  # the rental is for one GPU
                   {"kind": "replay", "trace": str(options.trace), "speed": options.speed, "period_ms": 1000,
                    "not_before_ms": started_at * 1000}),
    }
    if options.challenges:
        config.update({"challenges": "numpy", "challenge_poll_s": 0.25})
        if options.cheat:
            config.update({"challenge_cheat": True, "dev": True})
    path = state / "agent.config.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def launch_agent(config_path: Path, state: Path, procs: _Processes) -> Path:
    """Start ``gpurent agent run`` on ``config_path`` as ``procs.agent``; returns its log file."""
    log = state / "agent.log"
    procs.agent = subprocess.Popen(
        [sys.executable, "-m", "oracle.cli.main", "agent", "run", "--config", str(config_path), "-v"],
        env=_cli_env(state), cwd=str(state), stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    return log


def run_rental(gp: Gpurent, deployment: dict[str, Any], keys: DemoKeys, options: DemoOptions, state: Path,
               ui: Ui, procs: _Processes, telemetry: _Telemetry | None = None) -> dict[str, Any]:
    """Stake, offer, rent, run nodes and agent, settle, end, finalize, withdraw; the summary.

    Works against any anvil-backed deployment whose signer set is ``keys.node_addresses`` (the
    local demo's own, or one made by ``brownie run scripts/deploy.py``).
    """
    from oracle.localchain import _rpc, dev_address

    telemetry = telemetry or _telemetry(options, ui)
    use_nvml, duration_s, backdate_s = telemetry.use_nvml, telemetry.duration_s, telemetry.backdate_s
    rpc = gp.rpc
    agent_address = keys.agent_address
    provider, renter = dev_address(PROVIDER), dev_address(RENTER)
    sym = deployment.get("payment_token_symbol") or "tokens"

    # -- provider -------------------------------------------------------------------------------
    ui.step(f"provider {provider[:10]}… stakes {options.stake} {sym}",
            f"gpurent provider stake {options.stake} --dev-account {PROVIDER}")
    gp("provider", "stake", options.stake, dev_account=PROVIDER)
    ui.step(f"provider lists an H100 offer at {options.price_per_gpu_hour} {sym}/GPU-hour + "
            f"{options.price_per_kwh} {sym}/kWh in {options.region}",
            f"gpurent provider offer create --gpu-model '{GPU_MODEL}' --price-per-gpu-hour "
            f"{options.price_per_gpu_hour} --region {options.region} --agent {agent_address[:10]}…")
    offer = gp("provider", "offer", "create", "--gpu-model", GPU_MODEL, "--gpu-count", "1",
               "--price-per-gpu-hour", options.price_per_gpu_hour,
               "--price-per-kwh", options.price_per_kwh, "--region", options.region,
               "--agent", agent_address, dev_account=PROVIDER)["offer"]
    provider_before = gp("provider", "status", provider)
    reputation_before = provider_before["reputation"]

    # -- renter ---------------------------------------------------------------------------------
    ui.step(f"renter {renter[:10]}… opens a rental of offer {offer['offer_id']} with a {options.budget} {sym} budget",
            f"gpurent rent open {offer['offer_id']} --budget {options.budget} --dev-account {RENTER}")
    renter_before = gp("provider", "status", renter)["wallet_balance"]
    opened = gp("rent", "open", str(offer["offer_id"]), "--budget", options.budget, dev_account=RENTER)
    rental_id = opened["rental_id"]

    # -- oracle nodes ---------------------------------------------------------------------------
    # The nodes know only the chain: they learn the rental from its RentalStarted event, meter
    # what the agent sends, and settle by themselves (their keys pay the gas).
    for tx in _fund_node_keys(rpc, keys.node_addresses):
        gp.record("fund node keys", tx)
    ui.step(f"starting {len(keys.node_keystores)} attestation nodes (uvicorn subprocesses) that follow the chain "
            f"and settle every {options.settle_interval_s:g} s by themselves",
            "gpurent oracle run --config node-1.config.json")
    node_urls, node_procs, node_logs = launch_nodes(keys, deployment, rpc, state, options, procs)
    ui.note("nodes: " + ", ".join(f"{u} ({a[:10]}…)" for u, a in zip(node_urls, keys.node_addresses)))

    # -- start the rental and the agent ---------------------------------------------------------
    ui.step(f"provider starts rental {rental_id}; the nodes learn it from the RentalStarted event",
            f"gpurent provider start {rental_id} --dev-account {PROVIDER}")
    # The rental starts at a planned chain time (in the past for a time-compressed replay).
    planned_start = int(time.time() + 5 - backdate_s)
    head = int(_rpc(rpc, "eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
    if planned_start <= head:
        raise DemoError(f"the chain's clock ({head}) is past the planned rental start ({planned_start}); "
                        "a time-compressed replay needs an anvil whose clock starts in the past")
    _rpc(rpc, "evm_setNextBlockTimestamp", [planned_start])
    started_at = gp("provider", "start", str(rental_id), dev_account=PROVIDER)["started_at"]
    # The chain's clock back to now from the next block on (the rental keeps its start in the
    # past): a report settles only once its periodEnd, a sample's time, is not after the block time.
    _rpc(rpc, "evm_setNextBlockTimestamp", [max(started_at + 1, int(time.time()))])
    _rpc(rpc, "evm_mine")  # now (anvil keeps the clock offset of the block it mines); with
    # confirmations, also the block on top that makes RentalStarted confirmed
    _wait_nodes(node_urls, node_procs, node_logs, f"learn rental {rental_id} from RentalStarted", 20.0,
                lambda url: _knows(url, rental_id))
    # Launch the agent so that its first sample lands on the rental's start (interpreter
    # start-up takes a moment; a replay that starts earlier is held back by not_before_ms).
    # NVML samples are live, so there the agent starts just after the rental did.
    lead_s = -0.5 if use_nvml else 2.5
    while time.time() < started_at + backdate_s - lead_s:
        time.sleep(0.05)

    agent_config_path = agent_config(rental_id, deployment, node_urls, keys, state, options, started_at, use_nvml)
    ui.step("telemetry agent signs batches and sends them to every node",
            "gpurent agent run --config agent.config.json")
    agent_log = launch_agent(agent_config_path, state, procs)
    # Challenges draw from blocks and open from the first block after their deadline; this chain
    # only mines on transactions, so a block a second while the rental runs.
    ticker = _BlockTicker(rpc) if options.challenges else None

    # -- metering, and the nodes' settlements as they land on chain -----------------------------
    watch = _SettlementWatch(rpc, deployment["market"], rental_id, deployment["block_number"],
                             keys.node_addresses, deployment.get("payment_token_decimals", 18), sym)
    deadline = time.monotonic() + duration_s / (1 if use_nvml else options.speed) + 60
    live = list(range(len(node_urls)))
    stopped_node = None
    stop_sent = False
    ui.step("the nodes meter the telemetry; their settlement loops land quorum-signed reports on chain")
    with ui.bar("GPU time settled on chain", duration_s) as update:
        def progress() -> None:
            for line in watch.poll():
                ui.note(line)
            update(watch.available_gpu_seconds,
                   f"GPU time settled on chain: report {watch.sequence}" if watch.sequence else None)

        while True:
            finished = procs.agent.poll() is not None
            if use_nvml and not finished and not stop_sent and time.time() - started_at >= duration_s:
                procs.agent.send_signal(signal.SIGTERM)  # once: it then spools and drains
                stop_sent = True
            if (options.stop_node_after_s is not None and stopped_node is None
                    and (time.time() - started_at - backdate_s) * (1 if use_nvml else options.speed)
                    >= options.stop_node_after_s):
                index = live.pop()
                stopped_node = node_urls[index]
                _stop(node_procs[index])
                ui.note(f"stopped node {stopped_node}: the other {len(live)} still reach the threshold")
            progress()
            if finished:
                break
            if time.monotonic() > deadline:
                raise DemoError(f"the agent did not finish in time; see {agent_log}")
            time.sleep(0.5)
        if procs.agent.returncode != 0:
            raise DemoError(f"the agent exited with {procs.agent.returncode}; see {agent_log}")
        live_urls = [node_urls[i] for i in live]
        live_logs = [node_logs[i] for i in live]
        final_sequence = _final_sequence(live_urls, rental_id, int(deployment["signer_set"]["threshold"]), live_logs)

        if ticker is not None:
            ticker.stop()  # before the end: its timestamp is set explicitly
        # -- end; the nodes still settle the final report (periodEnd <= endedAt, within the grace)
        ui.step(f"renter ends rental {rental_id}; the nodes settle its final report (sequence {final_sequence})",
                f"gpurent rent end {rental_id} --dev-account {RENTER}")
        head = int(_rpc(rpc, "eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
        # chain clock back to now (a second on, so endedAt is not before the last sample's second)
        _rpc(rpc, "evm_setNextBlockTimestamp", [max(head + 1, int(time.time()) + 1)])
        gp("rent", "end", str(rental_id), dev_account=RENTER)
        wait_s = 3 * options.settle_interval_s + len(node_urls) * options.submit_stagger_s + 30
        until = time.monotonic() + wait_s
        while watch.sequence < final_sequence:
            if time.monotonic() > until:
                raise DemoError(
                    f"the nodes did not settle report {final_sequence} of rental {rental_id} within {wait_s:.0f} s "
                    f"(chain has {watch.sequence}); read the node logs: "
                    + ", ".join(str(p) for p in live_logs) + "; " + _settlement_state(live_urls))
            for proc, log in zip([node_procs[i] for i in live], live_logs):
                if proc.poll() is not None:
                    raise DemoError(f"a node exited with {proc.returncode}; see {log}")
            time.sleep(0.5)
            progress()
    settlements = watch.settlements
    if not settlements:
        raise DemoError(f"no usage report was settled; see the node logs in {state}")

    # -- finalize, withdraw ----------------------------------------------------------------------
    # Finalization waits the rental's settlement grace (faults can still slash it until then);
    # the demo's anvil skips that time instead of waiting a day.
    grace_s = int(gp("rent", "status", str(rental_id))["terms"]["settlement_grace_s"])
    ui.step(f"anvil skips the rental's {grace_s} s settlement grace (late faults could still slash it until then)",
            f"cast rpc evm_increaseTime {grace_s}")
    _rpc(rpc, "evm_increaseTime", [grace_s + 1])
    _rpc(rpc, "evm_mine", [])
    ui.step("provider finalizes: unused budget back to the renter, collateral released, reputation updated",
            f"gpurent provider finalize {rental_id} --dev-account {PROVIDER}")
    finalized = gp("provider", "finalize", str(rental_id), dev_account=PROVIDER)
    ui.step("provider withdraws earnings, renter withdraws the refund",
            f"gpurent provider withdraw --dev-account {PROVIDER}; gpurent rent withdraw --dev-account {RENTER}")
    provider_withdrawal = gp("provider", "withdraw", dev_account=PROVIDER)
    renter_withdrawal = gp("rent", "withdraw", dev_account=RENTER)

    # -- summary: read back ---------------------------------------------------------------------
    ui.step("reading the summary back from the chain and the nodes",
            f"gpurent rent status {rental_id}; gpurent provider status {provider[:10]}…")
    status = gp("rent", "status", str(rental_id))
    provider_after = gp("provider", "status", provider)
    renter_after = gp("provider", "status", renter)
    usage = status["settled_usage"]
    rep = provider_after["reputation"]
    return {
        "rental_id": rental_id,
        "offer_id": offer["offer_id"],
        "chain_id": deployment["chain_id"],
        "market": deployment["market"],
        "provider": provider,
        "renter": renter,
        "telemetry_source": "nvml" if use_nvml else f"replay {options.trace.name} at {options.speed:g}x",
        "status": status["status"],
        "gpu_hours": status["available_gpu_seconds"] / 3600,
        "available_gpu_seconds": status["available_gpu_seconds"],
        "busy_gpu_hours": usage["busy_gpu_seconds"] / 3600,
        "busy_gpu_seconds": usage["busy_gpu_seconds"],
        "energy_kwh": usage["energy_millijoules"] / 3.6e9,
        "energy_millijoules": usage["energy_millijoules"],
        "carbon_g": usage["carbon_milligrams"] / 1000,
        "carbon_milligrams": usage["carbon_milligrams"],
        "uptime_bps": status["uptime_bps"],
        "settled_reports": len(settlements),
        "settle_txs": [entry["tx"] for entry in settlements],
        "settlements": settlements,
        "settled_by": sorted({entry["node"] for entry in settlements if entry["node"]}),
        "last_sequence": status["sequence"],
        "budget": status["budget"],
        "paid_from_escrow": status["paid"],
        "protocol_fee": finalized["fee"],
        "paid_to_provider": provider_withdrawal["amount"],
        "refunded_to_renter": renter_withdrawal["amount"],
        "provider_balance_before": provider_before["wallet_balance"],
        "provider_balance_after": provider_after["wallet_balance"],
        "renter_balance_before": renter_before,
        "renter_balance_after": renter_after["wallet_balance"],
        "provider_reputation_before": reputation_before,
        "provider_reputation_score_bps": rep["score_bps"],
        "provider_reputation": rep,
        "provider_completed_rentals": rep["completed_rentals"],
        "provider_attested_gpu_seconds": rep["attested_gpu_seconds"],
        "node_report": _node_report(live_urls, rental_id, usage["sequence"]),
        "challenges": _challenges(live_urls, rental_id) if options.challenges else None,
        "challenges_in_report": {"passed": usage.get("challenges_passed"), "failed": usage.get("challenges_failed")},
        "decimals": deployment["payment_token_decimals"],
        "symbol": deployment["payment_token_symbol"],
        "stopped_node": stopped_node,
        "quorum": f"{deployment['signer_set']['threshold']} of {len(deployment['signer_set']['signers'])}",
    }


def _get_json(url: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    import httpx

    try:
        response = httpx.get(url, params=params, timeout=5)
    except httpx.HTTPError:
        return {}
    return response.json() if response.status_code == 200 else {}


def _knows(url: str, rental_id: int) -> bool:
    """Whether the node meters the rental: 404 'meters no rental' vs 409 'no batches yet' or 200."""
    import httpx

    try:
        status = httpx.get(f"{url}/v1/rentals/{rental_id}/report", timeout=5).status_code
    except httpx.HTTPError:
        return False
    return status in (200, 409)


def _wait_nodes(urls: Sequence[str], procs: Sequence[subprocess.Popen], logs: Sequence[Path], what: str,
                timeout_s: float, ready: Callable[[str], bool]) -> None:
    """Until ``ready(url)`` holds for every node; a clear error naming the logs of those that lag."""
    deadline = time.monotonic() + timeout_s
    waiting = list(range(len(urls)))
    while True:
        for i in waiting:
            if procs[i].poll() is not None:
                raise DemoError(f"node {urls[i]} exited with {procs[i].returncode}; see {logs[i]}")
        waiting = [i for i in waiting if not ready(urls[i])]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise DemoError(f"node(s) {', '.join(urls[i] for i in waiting)} did not {what} within "
                            f"{timeout_s:.0f} s; see {', '.join(str(logs[i]) for i in waiting)}")
        time.sleep(0.2)


def _fund_node_keys(rpc: str, addresses: Sequence[str], eth: int = 10) -> list[str]:
    """Send each node key some ETH from the deployer's dev account (the nodes pay settlement gas)."""
    from oracle.localchain import _rpc, dev_address

    txs = [_rpc(rpc, "eth_sendTransaction", [{"from": dev_address(DEPLOYER), "to": address,
                                              "value": hex(eth * 10**18)}]) for address in addresses]
    for _ in range(100):  # a block per transaction on anvil; wait for the last one
        if _rpc(rpc, "eth_getTransactionReceipt", [txs[-1]]):
            return txs
        time.sleep(0.1)
    raise DemoError(f"funding the node keys: transaction {txs[-1]} was not mined")


def _final_sequence(urls: Sequence[str], rental_id: int, threshold: int, logs: Sequence[Path],
                    timeout_s: float = 15.0) -> int:
    """The newest report a quorum of the live nodes holds once they agree (the agent has drained)."""
    deadline = time.monotonic() + timeout_s
    while True:
        held = sorted((_get_json(f"{url}/v1/rentals/{rental_id}/report").get("report", {}).get("sequence", 0)
                       for url in urls), reverse=True)
        if len(held) >= threshold and held[threshold - 1] > 0 and (len(set(held)) == 1
                                                                  or time.monotonic() > deadline):
            return held[threshold - 1]
        if time.monotonic() > deadline:
            raise DemoError(f"fewer than {threshold} live nodes hold a report of rental {rental_id} "
                            f"(sequences {held}); see {', '.join(map(str, logs))}")
        time.sleep(0.3)


def _settlement_state(urls: Sequence[str]) -> str:
    """What each node's /healthz says about its settlement loop (for an error message)."""
    parts = []
    for url in urls:
        chain = _get_json(url + "/healthz").get("chain", {})
        settlement = chain.get("settlement", {})
        parts.append(f"{url}: state {chain.get('state')}, round errors {settlement.get('round_errors')}, "
                     f"last submission {settlement.get('last_submission')}")
    return "; ".join(parts)


class _SettlementWatch:
    """The rental's settlements as they land (``UsageSettled``, and its entries of a batch's
    ``UsageBatchSettled``), and who sent each transaction (read from the chain: the demo itself
    never settles)."""

    def __init__(self, rpc: str, market: str, rental_id: int, from_block: int, node_addresses: Sequence[str],
                 decimals: int, symbol: str) -> None:
        from oracle.chain.artifacts import load_abi
        from oracle.chain.contract import connect

        self.w3 = connect(rpc)
        self.market = self.w3.eth.contract(address=market, abi=load_abi("GpuRentMarket"))
        self.rental_id = rental_id
        self.next_block = from_block
        self.nodes = {address: f"node-{i + 1}" for i, address in enumerate(node_addresses)}
        self.scale, self.symbol = 10 ** decimals, symbol
        self.settlements: list[dict[str, Any]] = []
        self.available_gpu_seconds = 0

    @property
    def sequence(self) -> int:
        return self.settlements[-1]["sequence"] if self.settlements else 0

    def poll(self) -> list[str]:
        """New settlements since the last poll, one line each."""
        head = self.w3.eth.block_number
        if head < self.next_block:
            return []
        from oracle.chain.settlements import get_settlements

        logs = get_settlements(self.market, self.next_block, head, rental_id=self.rental_id)
        self.next_block = head + 1
        lines = []
        for ev in logs:
            tx = self.w3.eth.get_transaction(ev.tx_hash)
            submitter = tx["from"]
            entry = {"sequence": ev.sequence, "payment": ev.payment,
                     "tx": ev.tx_hash, "submitter": submitter,
                     "node": self.nodes.get(submitter), "block": int(ev.block_number)}
            self.settlements.append(entry)
            lines.append(f"report {entry['sequence']} settled by {entry['node'] or 'a non-node account'} "
                         f"({submitter[:10]}…): +{entry['payment'] / self.scale:.6f} {self.symbol}")
        if logs:
            self.available_gpu_seconds = int(self.market.functions.getRental(self.rental_id).call()[3])  # availableGpuSeconds
        return lines


def _node_report(urls: Sequence[str], rental_id: int, sequence: int) -> dict[str, Any] | None:
    """One node's signed report for the settled sequence (a node's own view of the numbers)."""
    import httpx

    for url in urls:
        try:
            r = httpx.get(f"{url}/v1/rentals/{rental_id}/report", params={"sequence": sequence}, timeout=10)
        except httpx.HTTPError:
            continue
        if r.status_code == 200:
            body = r.json()
            return {"node": url, "signer": body["signer"], **body["report"]}
    return None


class _BlockTicker:
    """Mines an empty block every ``interval_s`` in a daemon thread until ``stop()``."""

    def __init__(self, rpc: str, interval_s: float = 1.0) -> None:
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(rpc, interval_s), name="demo-blocks", daemon=True)
        self._thread.start()

    def _run(self, rpc: str, interval_s: float) -> None:
        from oracle.localchain import _rpc

        while not self._stop.wait(interval_s):
            try:
                _rpc(rpc, "evm_mine")
            except Exception:  # the chain is going away: nothing to tick
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _challenges(urls: Sequence[str], rental_id: int) -> dict[str, Any] | None:
    """The quorum's proof-of-GPU record of the rental, as the first live node reports it."""
    for url in urls:
        body = _get_json(f"{url}/v1/rentals/{rental_id}/challenges")
        if body:
            return {"node": url, "passed": body["passed"], "failed": body["failed"], "unpaid": body["unpaid"],
                    "verdicts": [c["quorum"] or c["verdict"] for c in body["challenges"]]}
    return None


def render_summary(result: DemoResult) -> Any:
    """The final table (rich renderable)."""
    from rich.console import Group
    from rich.table import Table

    s = result.summary
    scale = 10 ** s["decimals"]
    sym = s["symbol"]
    t = Table(title=f"gpurent demo: rental {s['rental_id']} on chain {s['chain_id']} "
                    f"({result.wall_s:.0f} s wall clock)", title_justify="left")
    t.add_column("", style="bold")
    t.add_column("value", justify="right")
    t.add_column("read from", style="dim")
    rows = [
        ("GPU-hours (attested available)", f"{s['gpu_hours']:.4f}", "chain: getRental"),
        ("busy GPU-hours", f"{s['busy_gpu_hours']:.4f}", "chain: last settled report"),
        ("energy", f"{s['energy_kwh']:.5f} kWh", "chain: last settled report"),
        ("carbon", f"{s['carbon_g']:.2f} gCO2e", "chain: last settled report"),
        ("uptime", f"{s['uptime_bps'] / 100:.2f} %", "chain: getRental"),
        (f"reports settled (quorum {s['quorum']})", f"{s['settled_reports']} (last sequence {s['last_sequence']})",
         "chain: Usage(Batch)Settled"),
        ("budget escrowed", f"{s['budget'] / scale:.6f} {sym}", "chain: getRental"),
        ("paid from escrow", f"{s['paid_from_escrow'] / scale:.6f} {sym}", "chain: getRental"),
        ("  of which protocol fee", f"{s['protocol_fee'] / scale:.6f} {sym}", "chain: RentalFinalized"),
        ("paid to provider", f"{s['paid_to_provider'] / scale:.6f} {sym}", "chain: Withdrawn"),
        ("refunded to renter", f"{s['refunded_to_renter'] / scale:.6f} {sym}", "chain: Withdrawn"),
        ("provider reputation", f"{s['provider_reputation_score_bps'] / 100:.2f} / 100 "
                                f"({s['provider_completed_rentals']} completed)", "chain: reputationScore"),
    ]
    pog = s.get("challenges")
    if pog:
        unpaid_s = sum(span["end_ms"] - span["start_ms"] for span in pog["unpaid"]) / 1000
        rows.append(("proof-of-GPU challenges (quorum)", f"{pog['passed']} passed, {pog['failed']} failed"
                     + (f", {unpaid_s:.0f} GPU-s unpaid" if pog["unpaid"] else ""), f"node {pog['node']}"))
    node = s.get("node_report")
    if node:
        rows.append(("node's report, same sequence", f"{node['energy_millijoules'] / 3.6e9:.5f} kWh, "
                     f"{node['busy_gpu_seconds'] / 3600:.4f} busy GPU-h", f"node {node['node']}"))
    for row in rows:
        t.add_row(*row)
    st = Table(title="settlements (sent by the nodes themselves; chain: Usage(Batch)Settled and the tx sender)",
               title_justify="left")
    st.add_column("report", justify="right")
    st.add_column("paid", justify="right")
    st.add_column("submitted by")
    st.add_column("tx hash", overflow="fold")
    for entry in s["settlements"]:
        st.add_row(str(entry["sequence"]), f"{entry['payment'] / scale:.6f} {sym}",
                   f"{entry['node'] or 'not a node'} {entry['submitter'][:6]}…{entry['submitter'][-4:]}", entry["tx"])
    txt = Table(title="transactions", title_justify="left", show_header=False)
    txt.add_column("step", style="bold")
    txt.add_column("tx hash", overflow="fold")
    for label, hashes in result.transactions.items():
        txt.add_row(label, hashes[0])
    return Group(t, st, txt)
