"""``gpurent demo`` (what ``make demo`` runs): a whole rental on a local anvil, with a summary."""

from __future__ import annotations

from pathlib import Path

import click

from oracle.cli.common import GuardedCommand, print_json
from oracle.cli.params import AMOUNT, TRACE_FILE, FiniteFloat


@click.command(cls=GuardedCommand)
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where the demo keeps its chain, keys, node databases and logs (default var/demo)")
@click.option("--trace", type=TRACE_FILE, default=None,
              help="telemetry CSV to replay (default: the H100 training trace shipped in oracle/data/traces)")
@click.option("--speed", type=FiniteFloat(1, 1000), default=8.0, show_default=True,
              help="replay time compression (with challenges, capped so that a settled report counts the "
                   "start challenge: about 2.4x for the default trace; at 1x with --cheat)")
@click.option("--source", type=click.Choice(["auto", "replay", "nvml"]), default="auto", show_default=True,
              help="auto: NVML when this host has a GPU, else replay the trace")
@click.option("--nvml-seconds", type=FiniteFloat(5, 86_400), default=30.0, show_default=True,
              help="how long to meter a real GPU")
@click.option("--stop-node-after", type=FiniteFloat(0, 86_400), default=None, metavar="SECONDS",
              help="stop one oracle node this far into the rental (GPU seconds; the other two still settle)")
@click.option("--budget", type=AMOUNT, default="5", show_default=True, help="renter's budget in tUSD")
@click.option("--keep-running", is_flag=True, help="leave the chain and the nodes running afterwards")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON, no progress")
@click.option("--no-challenges", is_flag=True, help="run without proof-of-GPU challenges")
@click.option("--cheat", is_flag=True,
              help="dev only: the agent answers every proof-of-GPU challenge wrongly (the GPU's time goes unpaid); "
                   "replays at 1x unless --speed is given")
@click.option("--no-container", is_flag=True,
              help="do not run the renter's command in a container (default: via the provider daemon where Docker is available)")
def demo(state_dir: Path | None, trace: Path | None, speed: float, source: str, nvml_seconds: float,
         stop_node_after: float | None, budget: str, keep_running: bool, as_json: bool, no_challenges: bool,
         cheat: bool, no_container: bool) -> None:
    """Run a whole rental on a local anvil: deploy, 3 oracle nodes (threshold 2) that learn the
    rental from chain events and settle it themselves, stake, offer, rent, telemetry, metering,
    end, refund, and print what the chain recorded (node logs in the state directory)."""
    from oracle.demo import DemoOptions, Ui, render_summary, run_demo

    if cheat and no_challenges:
        raise click.UsageError("--cheat needs the challenges (drop --no-challenges)")
    if click.get_current_context().get_parameter_source("speed").name == "DEFAULT" and not no_challenges:
        if cheat:
            speed = 1.0  # reports follow the wall clock, so a failed challenge is judged before they count it
        else:
            from oracle.demo.base import DEFAULT_TRACE, speed_to_count_the_start_challenge

            speed = speed_to_count_the_start_challenge(trace or DEFAULT_TRACE, speed)
    from oracle.cli.common import parse_amount

    parse_amount(budget, 6, "--budget", max_units=2**96 - 1)  # the demo's tUSD has 6 decimals
    options = DemoOptions(speed=speed, source=source, nvml_seconds=nvml_seconds, budget=budget,
                          stop_node_after_s=stop_node_after, keep_running=keep_running,
                          challenges=not no_challenges, cheat=cheat, container=not no_container)
    if state_dir is not None:
        options.state_dir = state_dir
    if trace is not None:
        options.trace = trace
    result = run_demo(options, Ui(not as_json))
    if as_json:
        print_json({"summary": result.summary, "transactions": result.transactions, "wall_s": result.wall_s})
        return
    from oracle.cli.common import console

    console().print(render_summary(result))
    if keep_running:
        click.echo(f"chain {result.rpc_url} and nodes left running; deployment file {result.deployments}")

