"""``gpurent agent run``: the telemetry agent beside the provider's GPUs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from oracle.cli.common import GuardedGroup
from oracle.telemetry.sources.nvml import nvml_gpu_count

SOURCES = ("auto", "nvml", "replay", "simulated")


@click.group(cls=GuardedGroup)
def agent() -> None:
    """Telemetry agent: read GPUs, sign batches, deliver them to the oracle nodes."""


@agent.command("run")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TOML or JSON agent config; the options below override it")
@click.option("--rental", "rental_id", type=click.IntRange(0), default=None, help="on-chain rental id")
@click.option("--chain-id", type=click.IntRange(1), default=None,
              help="the market's chain id (every batch is signed over it)")
@click.option("--market", default=None, metavar="ADDRESS",
              help="the GpuRentMarket address (default: the deployment file's market for --chain-id)")
@click.option("--deployments", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="deployment file to look the market up in (default: $GPURENT_DEPLOYMENTS or "
                   "~/.gpurent/deployments.json)")
@click.option("--node", "nodes", multiple=True, metavar="URL", help="oracle node URL (repeat for each node)")
@click.option("--keystore", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="the agent key's encrypted keystore (its address is the offer's --agent)")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="file whose first line is the keystore password (default: $GPURENT_AGENT_PASSWORD)")
@click.option("--spool", type=click.Path(path_type=Path), default=None,
              help="SQLite spool file (default agent-spool.sqlite3)")
@click.option("--source", type=click.Choice(SOURCES), default=None,
              help="auto: NVML if a GPU is present, else replay --trace, else simulated")
@click.option("--trace", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="telemetry CSV to replay (shared format)")
@click.option("--speed", type=click.FloatRange(0, 10_000, min_open=True), default=None,
              help="replay speed (time compression)")
@click.option("--not-before-ms", type=click.IntRange(0), default=None,
              help="replay: stamp no sample before this unix ms (the rental's start)")
@click.option("--sample-hz", type=click.FloatRange(0, 10, min_open=True), default=None)
@click.option("--batch-samples", type=click.IntRange(1), default=None)
@click.option("--dev", is_flag=True, default=None, help="accept a weak keystore password (local demos only)")
@click.option("-v", "--verbose", is_flag=True)
def run(config_file: Path | None, rental_id: int | None, chain_id: int | None, market: str | None,
        deployments: Path | None, nodes: tuple[str, ...], keystore: Path | None,
        password_file: Path | None, spool: Path | None, source: str | None, trace: Path | None,
        speed: float | None, not_before_ms: int | None, sample_hz: float | None, batch_samples: int | None,
        dev: bool | None, verbose: bool) -> None:
    """Run the agent until SIGINT/SIGTERM (or until a replayed trace ends)."""
    from oracle.agent import load_agent_config, make_agent_config, run_agent

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s agent %(levelname)s %(message)s")
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
            source_overrides["kind"] = "simulated"
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
    click.echo(f"agent: rental {config.rental_id}, source {config.source.kind}, nodes {', '.join(config.node_urls)}",
               err=True)
    raise SystemExit(run_agent(config))


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
