"""``gpurent agent run``: the telemetry agent beside the provider's GPUs; ``agent answer``: what it owes after the end."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from oracle.cli.common import ADDRESS, DEFAULT_RPC, RPC_ENV, GuardedGroup, OperationFailed
from oracle.cli.params import ID, TEXT_FILE, TRACE_FILE, URL, FiniteFloat, uint
from oracle.telemetry.sources.nvml import nvml_gpu_count

SOURCES = ("auto", "nvml", "replay", "simulated")


@click.group(cls=GuardedGroup)
def agent() -> None:
    """Telemetry agent: read GPUs, sign batches, deliver them to the oracle nodes."""


@agent.command("run")
@click.option("--config", "config_file", type=TEXT_FILE, default=None,
              help="TOML or JSON agent config; the options below override it")
@click.option("--rental", "rental_id", type=ID, default=None, help="on-chain rental id")
@click.option("--chain-id", type=uint(64, 1), default=None,
              help="the market's chain id (every batch is signed over it)")
@click.option("--market", type=ADDRESS, default=None,
              help="the GpuRentMarket address (default: the deployment file's market for --chain-id)")
@click.option("--deployments", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="deployment file to look the market up in (default: $GPURENT_DEPLOYMENTS or "
                   "~/.gpurent/deployments.json)")
@click.option("--node", "nodes", multiple=True, type=URL, help="oracle node URL (repeat for each node)")
@click.option("--rpc", type=URL, default=None, envvar=RPC_ENV,
              help=f"the chain's JSON-RPC: the agent takes the rental's start from it and stops when the rental "
                   f"ends (default {DEFAULT_RPC} without --config) [env {RPC_ENV}]")
@click.option("--keystore", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="the agent key's encrypted keystore (its address is the offer's --agent)")
@click.option("--password-file", type=TEXT_FILE, default=None,
              help="file whose first line is the keystore password (default: $GPURENT_AGENT_PASSWORD)")
@click.option("--spool", type=click.Path(path_type=Path), default=None,
              help="SQLite spool file (default agent-spool.sqlite3)")
@click.option("--source", type=click.Choice(SOURCES), default=None,
              help="auto: NVML if a GPU is present, else replay --trace; simulated needs --dev")
@click.option("--trace", type=TRACE_FILE, default=None,
              help="telemetry CSV to replay (shared format)")
@click.option("--speed", type=FiniteFloat(0, 10_000, min_open=True), default=None,
              help="replay speed (time compression)")
@click.option("--not-before-ms", type=uint(64), default=None,
              help="replay: stamp no sample before this unix ms (the rental's start)")
@click.option("--sample-hz", type=FiniteFloat(0, 10, min_open=True), default=None)
@click.option("--batch-samples", type=uint(16, 1), default=None)
@click.option("--dev", is_flag=True, default=None,
              help="dev mode (local demos only): accept a weak keystore password, allow --source simulated")
@click.option("-v", "--verbose", is_flag=True)
def run(config_file: Path | None, rental_id: int | None, chain_id: int | None, market: str | None,
        deployments: Path | None, nodes: tuple[str, ...], rpc: str | None, keystore: Path | None,
        password_file: Path | None, spool: Path | None, source: str | None, trace: Path | None,
        speed: float | None, not_before_ms: int | None, sample_hz: float | None, batch_samples: int | None,
        dev: bool | None, verbose: bool) -> None:
    """Run the agent for a started rental until it ends on chain, SIGINT/SIGTERM, or a replayed
    trace ends. Exits 1 when the nodes refuse its batches (then `gpurent agent requeue`)."""
    from oracle.agent import load_agent_config, make_agent_config, run_agent

    # Without -v the one progress line speaks; logs would bury it (36 refusals, one per batch).
    logging.basicConfig(level=logging.INFO if verbose else logging.CRITICAL,
                        format="%(asctime)s agent %(levelname)s %(message)s")
    if config_file is None and rpc is None:
        rpc = DEFAULT_RPC
    if chain_id is None and config_file is None and rpc is not None:
        chain_id = _chain_id(rpc)
    overrides = _given(rental_id=rental_id, keystore_path=keystore, keystore_password_file=password_file,
                       sample_hz=sample_hz, batch_samples=batch_samples, dev=dev, chain_id=chain_id,
                       market=market)
    if chain_id is not None and market is None:
        overrides["market"] = _deployed_market(chain_id, deployments)
    if nodes:
        overrides["nodes"] = list(nodes)
    source_overrides: dict[str, Any] = {}
    if source is not None and source != "auto":
        source_overrides["kind"] = source
    elif source == "auto" or (config_file is None and source is None):
        if nvml_gpu_count() > 0:
            source_overrides["kind"] = "nvml"
        elif trace is not None:
            source_overrides["kind"] = "replay"
        else:
            raise click.UsageError("no GPU found (NVML) and no --trace: run on the GPU host, give --trace FILE to "
                                   "replay a telemetry CSV, or --source simulated --dev for made-up telemetry "
                                   "(local demos only)")
    source_overrides.update(_given(trace=trace, speed=speed, not_before_ms=not_before_ms))
    if config_file is not None:
        config = load_agent_config(config_file)
        data = config.model_dump()
        data.update(overrides)
        data["source"] = {**data["source"], **source_overrides}
        config = make_agent_config(data)
    else:
        missing = [name for name, value in (("--rental", rental_id), ("--chain-id", chain_id),
                                            ("--node", nodes or None), ("--keystore", keystore))
                   if value is None]
        if missing:
            raise click.UsageError(f"missing {', '.join(missing)} (or give --config FILE)")
        config = make_agent_config({"spool_path": spool or Path("agent-spool.sqlite3"), **overrides,
                                    "source": source_overrides})
    if spool is not None and config_file is not None:
        config = make_agent_config({**config.model_dump(), "spool_path": spool})
    if config.source.kind == "simulated" and not config.dev:
        raise click.UsageError("simulated telemetry is for local demos only: add --dev (or dev = true in the "
                               "config), or measure real GPUs with --source nvml")
    follow = None
    if rpc is not None:
        follow, config = _follow_rental(rpc, config, not_before_ms)
    click.echo(f"agent: rental {config.rental_id}, source {config.source.kind}, nodes {', '.join(config.node_urls)}",
               err=True)
    line = ProgressLine(config.rental_id, enabled=sys.stderr.isatty() and not verbose)
    monitors = []

    def monitor(agent_: Any, stop: Any) -> Any:
        from oracle.agent.rental_watch import AgentMonitor

        monitors.append(AgentMonitor(agent_, stop, rental=follow, on_progress=line.update).start())
        return monitors[-1]

    code = run_agent(config, monitor=monitor)
    line.close()
    progress = monitors[0].progress if monitors else None
    if progress is not None:
        click.echo(summary_line(config.rental_id, progress), err=True)
        if any(progress.refused.values()):
            raise OperationFailed(
                f"the nodes refused {sum(progress.refused.values())} batches for good (last: "
                f"{(progress.last_refusal or '?')[:300]}); fix the cause, then resend them with "
                f"`gpurent agent requeue --spool {config.spool_path}`")
    raise SystemExit(code)


class ProgressLine:
    """One line on a terminal, rewritten in place: samples, batches, deliveries, refusals."""

    def __init__(self, rental_id: int, *, enabled: bool) -> None:
        self.rental_id, self.enabled, self.width = rental_id, enabled, 0

    def update(self, p: Any) -> None:
        if not self.enabled:
            return
        text = summary_line(self.rental_id, p)[:150]
        sys.stderr.write("\r" + text.ljust(self.width))
        sys.stderr.flush()
        self.width = len(text)

    def close(self) -> None:
        if self.enabled and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()


def summary_line(rental_id: int, p: Any) -> str:
    delivered = ", ".join(f"{_host(n)} {c}" for n, c in sorted(p.delivered.items())) or "none yet"
    refused = sum(p.refused.values())
    text = f"agent: rental {rental_id}: {p.samples:,} samples in {p.batches:,} batches; delivered {delivered}"
    if refused:
        text += f"; REFUSED {refused}"
    if p.stopped_because:
        why = "every node refuses its batches" if p.stopped_because == "refused" else p.stopped_because
        text += f"; stopped: {why}"
    return text


def _host(url: str) -> str:
    return url.split("://", 1)[-1]


def _chain_id(rpc: str) -> int:
    from oracle.chain.contract import connect

    try:
        return int(connect(rpc, timeout_s=10.0).eth.chain_id)
    except Exception as exc:
        raise OperationFailed(f"cannot reach the RPC at {rpc} ({' '.join(str(exc).split())[:160]}); give --rpc URL "
                              "of the rental's chain, or --config FILE to run without it") from None


def _follow_rental(rpc: str, config: Any, not_before_ms: int | None) -> tuple[Any, Any]:
    """Check the rental on chain before any sample is signed; take its start for the replay."""
    import json

    from oracle.agent import make_agent_config
    from oracle.agent.rental_watch import RentalOnChain

    try:
        follow = RentalOnChain(rpc, config.market, config.rental_id)
        chain_id = follow.chain_id()
        state = follow.read()
    except Exception as exc:
        raise OperationFailed(f"cannot read rental {config.rental_id} at {rpc} "
                              f"({' '.join(str(exc).split())[:160]}); is the chain running?") from None
    if chain_id != config.chain_id:
        raise click.UsageError(f"--rpc {rpc} is chain {chain_id}, the agent signs for chain {config.chain_id}")
    rid = config.rental_id
    if state.status == "None":
        raise click.UsageError(f"there is no rental {rid} on market {config.market} (chain {chain_id})")
    if state.status == "Open":
        raise OperationFailed(f"rental {rid} is Open, not started yet: the provider starts it with "
                              f"`gpurent provider start {rid}`; run the agent after that")
    if state.status != "Active":
        raise OperationFailed(f"rental {rid} is {state.status}: there is nothing left to meter")
    try:
        address = json.loads(Path(config.keystore_path).read_text()).get("address", "")
    except (OSError, ValueError, AttributeError):
        address = ""
    if address and state.agent and address.lower().removeprefix("0x") != state.agent.lower().removeprefix("0x"):
        raise click.UsageError(f"the keystore {config.keystore_path} holds agent 0x{address.removeprefix('0x')}, "
                               f"but rental {rid} takes telemetry from {state.agent} (the offer's --agent)")
    if config.source.kind == "replay" and not_before_ms is None and config.source.not_before_ms is None:
        data = config.model_dump()
        data["source"] = {**data["source"], "not_before_ms": state.started_at * 1000}
        config = make_agent_config(data)
    return follow, config


def _deployed_market(chain_id: int, deployments: Path | None) -> str:
    """The market of ``chain_id`` in the deployment file (what ``gpurent deploy`` wrote)."""
    from oracle.deployment import DeploymentError, load_deployment

    try:
        return load_deployment(chain_id, deployments).market
    except DeploymentError as exc:
        raise click.UsageError(f"{exc}; or give --market ADDRESS") from None


def _given(**options: Any) -> dict[str, Any]:
    """The options given on the command line (click passes None for the others)."""
    return {name: value for name, value in options.items() if value is not None}


@agent.command("requeue")
@click.option("--spool", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="the agent's spool (what `gpurent agent run --spool` used)")
@click.option("--node", "nodes", multiple=True, type=URL,
              help="only this node's refused batches (repeat; default: every node's)")
@click.option("--json", "as_json", is_flag=True)
def requeue(spool: Path, nodes: tuple[str, ...], as_json: bool) -> None:
    """Put batches the nodes refused back in their queues, once the cause is fixed; the next
    `gpurent agent run` with the same --spool sends them first, in order."""
    from oracle.agent.delivery import normalise_node_url
    from oracle.agent.spool import Spool
    from oracle.cli.common import print_json

    from oracle.errors import StorageError

    try:
        store = Spool(spool)
        known = store.nodes()
    except StorageError as exc:
        raise click.UsageError(f"--spool {spool} is not an agent spool ({' '.join(str(exc).split())[:160]})") from None
    with store:
        wanted = [normalise_node_url(n) for n in nodes] or known
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise click.UsageError(f"{spool} has no batches for {', '.join(unknown)} (it has: "
                                   f"{', '.join(known) or 'none'})")
        counts = {node: store.requeue_parked(node) for node in wanted}
    if as_json:
        print_json({"spool": str(spool), "requeued": counts})
        return
    total = sum(counts.values())
    if not total:
        click.echo(f"no refused batches in {spool}")
        return
    per_node = ", ".join(f"{_host(n)} {c}" for n, c in counts.items() if c)
    click.echo(f"requeued {total} batches ({per_node}); `gpurent agent run` with --spool {spool} sends them")


@agent.command("answer")
@click.option("--config", "config_file", type=TEXT_FILE, required=True,
              help="the agent config `gpurent agent run` used (keys, nodes, GPUs, challenges solver)")
@click.option("-v", "--verbose", is_flag=True)
def answer(config_file: Path, verbose: bool) -> None:
    """Answer the proof-of-GPU challenges a rental still owes once it ended, its end challenge
    included (unanswered, each is a slashable fault). Run it after the rental ended when
    `gpurent agent run` was not running then; it waits at most the config's challenge_drain_s.
    Exits 1 if something is still unanswered."""
    from oracle.agent import load_agent_config
    from oracle.agent.agent import answer_owed_challenges

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s agent %(levelname)s %(message)s")
    config = load_agent_config(config_file)
    click.echo(f"agent: answering what rental {config.rental_id} owes (end challenge included), "
               f"at most {config.challenge_drain_s:g} s", err=True)
    if not answer_owed_challenges(config):
        raise OperationFailed(f"challenges of rental {config.rental_id} still unanswered after "
                              f"{config.challenge_drain_s:g} s (challenge_drain_s)")
    click.echo(f"rental {config.rental_id}: every challenge it owes is answered", err=True)
