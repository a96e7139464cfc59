"""``gpurent chain start|stop|status``: a local anvil with funded dev accounts."""

from __future__ import annotations

import click

from oracle.cli.common import GuardedGroup, console, kv_table, print_json
from oracle.cli.params import FiniteFloat, uint
from oracle.localchain import DEFAULT_PORT, LOCAL_CHAIN_ID, LocalChain, dev_accounts


@click.group(cls=GuardedGroup)
def chain() -> None:
    """Start, stop or inspect a local anvil chain (state in ~/.gpurent/chain)."""


def _state_out(state, running: bool) -> dict:
    return {"running": running, "url": state.url, "chain_id": state.chain_id, "pid": state.pid,
            "log": state.log, "dev_accounts": dev_accounts()}


@chain.command()
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535))
@click.option("--chain-id", default=LOCAL_CHAIN_ID, show_default=True, type=uint(64, 1),
              help="e.g. 11155111 to rehearse a Sepolia deployment locally")
@click.option("--block-time", type=FiniteFloat(0, 3600, min_open=True), default=None, help="seconds per block (default: a block per transaction)")
@click.option("--json", "as_json", is_flag=True)
def start(port: int, chain_id: int, block_time: float | None, as_json: bool) -> None:
    """Start anvil in the background; its 10 dev accounts hold 10,000 ETH each."""
    state = LocalChain().start(port=port, chain_id=chain_id, block_time_s=block_time)
    out = _state_out(state, True)
    if as_json:
        print_json(out)
        return
    con = console()
    con.print(f"local chain {state.chain_id} at [bold]{state.url}[/bold] (pid {state.pid}, log {state.log})")
    con.print("dev accounts (use --dev-account N; anvil's public keys, never for real funds):")
    for i, address in enumerate(out["dev_accounts"]):
        con.print(f"  {i}  {address}")
    con.print("next: gpurent deploy --dev-account 0")


@chain.command()
@click.option("--json", "as_json", is_flag=True)
def stop(as_json: bool) -> None:
    """Stop the local anvil started by `gpurent chain start`."""
    state = LocalChain().stop()
    if as_json:
        print_json({"stopped": state is not None, "pid": state.pid if state else None})
    elif state is None:
        click.echo("no local chain recorded as running")
    else:
        click.echo(f"stopped the local chain at {state.url} (pid {state.pid})")


@chain.command()
@click.option("--json", "as_json", is_flag=True)
def status(as_json: bool) -> None:
    """Whether the local chain runs, where, and its block height."""
    local = LocalChain()
    state = local.running()
    if state is None:
        if as_json:
            print_json({"running": False})
        else:
            click.echo("no local chain running (`gpurent chain start`)")
        return
    from oracle.localchain import _rpc

    block = int(_rpc(state.url, "eth_blockNumber"), 16)
    out = {**_state_out(state, True), "block_number": block}
    if as_json:
        print_json(out)
        return
    console().print(kv_table("local chain", [("url", state.url), ("chain id", state.chain_id),
                                             ("pid", state.pid), ("block", block), ("log", state.log)]))
