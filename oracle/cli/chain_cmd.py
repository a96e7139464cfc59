"""``gpurent chain start|stop|status|fund|warp``: a local anvil with funded dev accounts that keeps
its state across restarts, money for any address, and a clock one can move forward."""

from __future__ import annotations

import click

from pathlib import Path

from oracle.cli.common import (
    ADDRESS,
    RPC_ENV,
    GuardedGroup,
    OperationFailed,
    console,
    kv_table,
    parse_amount,
    print_json,
)
from oracle.cli.params import AMOUNT_OR_ZERO, URL, FiniteFloat, uint
from oracle.localchain import DEFAULT_PORT, LOCAL_CHAIN_ID, LocalChain, dev_accounts


@click.group(cls=GuardedGroup)
def chain() -> None:
    """Start, stop or inspect a local anvil chain (state in ~/.gpurent/chain)."""


def _state_out(state, running: bool) -> dict:
    return {"running": running, "url": state.url, "chain_id": state.chain_id, "pid": state.pid,
            "log": state.log, "dev_accounts": dev_accounts()}


@chain.command()
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535),
              envvar="GPURENT_CHAIN_PORT", help="port of the local chain [env GPURENT_CHAIN_PORT]")
@click.option("--chain-id", default=LOCAL_CHAIN_ID, show_default=True, type=uint(64, 1),
              help="e.g. 11155111 to rehearse a Sepolia deployment locally")
@click.option("--block-time", type=FiniteFloat(0, 3600, min_open=True), default=None,
              help="seconds per block (default: a block per transaction)")
@click.option("--fresh", is_flag=True, help="forget the chain saved by earlier runs and start from block 0")
@click.option("--json", "as_json", is_flag=True)
def start(port: int, chain_id: int, block_time: float | None, fresh: bool, as_json: bool) -> None:
    """Start anvil in the background; its 10 dev accounts hold 10,000 ETH each. The chain is saved
    as it goes (~/.gpurent/chain): a later `chain start` carries on with its deployment and rentals."""
    local = LocalChain()
    saved = local.saved_state(chain_id)
    if fresh and saved.exists():
        saved.unlink()
    resumed = saved.exists()
    state = local.start(port=port, chain_id=chain_id, block_time_s=block_time, persist=True)
    out = {**_state_out(state, True), "resumed": resumed, "saved_state": str(saved)}
    if as_json:
        print_json(out)
        return
    con = console()
    con.print(f"local chain {state.chain_id} at [bold]{state.url}[/bold] (pid {state.pid}, log {state.log})")
    con.print(f"carrying on from the chain saved in {saved} (--fresh starts over)" if resumed
              else f"saved as it goes in {saved}")
    con.print("dev accounts (use --dev-account N; anvil's public keys, never for real funds):")
    for i, address in enumerate(out["dev_accounts"]):
        con.print(f"  {i}  {address}")
    con.print("next: gpurent deploy --dev-account 0" if not resumed else "next: gpurent market list")


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


def _running_url(rpc: str | None) -> str:
    """The local anvil to act on: --rpc, else the one `gpurent chain start` recorded."""
    if rpc:
        return rpc
    state = LocalChain().running()
    if state is None:
        raise click.UsageError("no local chain running: `gpurent chain start` (or give --rpc URL of an anvil)")
    return state.url


def _require_anvil(url: str) -> None:
    from oracle.localchain import _rpc

    try:
        version = str(_rpc(url, "web3_clientVersion"))
    except Exception as exc:
        raise OperationFailed(f"cannot reach {url} ({' '.join(str(exc).split())[:120]}); is the chain running?") \
            from None
    if not version.lower().startswith("anvil"):
        raise click.UsageError(f"{url} is {version or 'not anvil'}: fund and warp only work on a local anvil")


@chain.command()
@click.argument("address", type=ADDRESS)
@click.option("--eth", "eth", type=AMOUNT_OR_ZERO, default="10", show_default=True,
              help="ETH for gas to set as the address's balance")
@click.option("--tokens", type=AMOUNT_OR_ZERO, default="1000", show_default=True,
              help="test tokens (the deployment's TestStablecoin) to mint to it; 0 for none")
@click.option("--rpc", type=URL, default=None, envvar=RPC_ENV,
              help=f"the anvil (default: the one `chain start` ran) [env {RPC_ENV}]")
@click.option("--deployments", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="deployment file (default: $GPURENT_DEPLOYMENTS or ~/.gpurent/deployments.json)")
@click.option("--json", "as_json", is_flag=True)
def fund(address: str, eth: str, tokens: str, rpc: str | None, deployments: Path | None, as_json: bool) -> None:
    """Give ADDRESS gas money and test tokens on a local chain (a fresh wallet, a node's key)."""
    from oracle.chain.tokens import balance_of, token_meta
    from oracle.chain.contract import connect
    from oracle.localchain import fund_eth, mint_test_tokens
    from oracle.units import format_amount

    url = _running_url(rpc)
    _require_anvil(url)
    wei = parse_amount(eth, 18, "--eth")
    fund_eth(url, address, wei)
    out: dict = {"address": address, "eth_wei": wei, "eth_display": format_amount(wei, 18, "ETH")}
    line = f"{address} now holds {out['eth_display']}"
    from decimal import Decimal

    if Decimal(tokens) != 0:
        from oracle.deployment import load_deployment

        w3 = connect(url, timeout_s=10.0)
        deployment = load_deployment(int(w3.eth.chain_id), deployments)
        meta = token_meta(w3, deployment.payment_token)
        units = parse_amount(tokens, meta.decimals, "--tokens")
        try:
            tx = mint_test_tokens(url, deployment.payment_token, address, units)
        except Exception as exc:
            raise OperationFailed(f"cannot mint {meta.label}: {' '.join(str(exc).split())[:160]} (only the "
                                  "deployment's own TestStablecoin can be minted)") from None
        balance = balance_of(w3, deployment.payment_token, address)
        out.update({"token": deployment.payment_token, "minted": units, "minted_display":
                    format_amount(units, meta.decimals, meta.symbol), "token_balance": balance,
                    "token_balance_display": format_amount(balance, meta.decimals, meta.symbol), "tx": tx})
        line += f" and {out['token_balance_display']} (minted {out['minted_display']})"
    if as_json:
        print_json(out)
    else:
        click.echo(line)


@chain.command()
@click.argument("duration")
@click.option("--rpc", type=URL, default=None, envvar=RPC_ENV,
              help=f"the anvil (default: the one `chain start` ran) [env {RPC_ENV}]")
@click.option("--json", "as_json", is_flag=True)
def warp(duration: str, rpc: str | None, as_json: bool) -> None:
    """Move a local chain's clock DURATION forward (90s, 20min, 3h, 2d, 1h30min) and mine a block:
    past a settlement grace, an unbonding delay or a timelock delay without waiting."""
    import time

    from oracle.localchain import warp as warp_clock
    from oracle.units import format_duration, format_time, parse_duration

    try:
        seconds = parse_duration(duration, "DURATION")
    except ValueError as exc:
        raise click.BadParameter(str(exc).removeprefix("DURATION: "), param_hint="DURATION") from None
    url = _running_url(rpc)
    _require_anvil(url)
    now = warp_clock(url, seconds)
    out = {"warped_s": seconds, "chain_time": now, "chain_time_display": format_time(now, int(time.time()))}
    if as_json:
        print_json(out)
    else:
        click.echo(f"chain clock moved {format_duration(seconds)} forward: it is now {out['chain_time_display']}")
