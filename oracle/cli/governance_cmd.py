"""``gpurent governance``: the oracle signer set and the market parameters (governance role)."""

from __future__ import annotations

from typing import Any

import click

from oracle.actions import reads
from oracle.cli.common import (
    ADDRESS,
    ChainOptions,
    GuardedGroup,
    Session,
    WalletSpec,
    chain_options,
    console,
    kv_table,
    print_json,
    print_result,
    signing_session,
    wallet_options,
)
from oracle.cli.display import when
from oracle.cli.params import NAME32, uint


@click.group(cls=GuardedGroup)
def governance() -> None:
    """Governance through the deployment's timelock: schedule a change (the proposer's key), then
    execute it once the delay has passed (anyone). Signer set, GPU models, parameters."""


def _govern(chain: ChainOptions, wallet: WalletSpec, execute: bool, warp: bool, function: str,
            *args: Any) -> tuple[dict[str, Any], str]:
    """Schedule (default) or execute ``market.function(*args)`` through the timelock; a deployment
    without one (tests, old deployments) calls the market directly with the governance key.
    ``warp`` (a local anvil only): schedule, move the chain clock past the delay, execute."""
    from oracle.actions import governance as gov

    s = signing_session(chain, wallet)
    ctx = s.require_signer()
    if gov.timelock(ctx) is None:
        done = gov.schedule(ctx, function, *args)
        return done.as_dict(), f"{function} done (tx {done.done.tx_hash})"
    if not execute or warp:
        scheduled = gov.schedule(ctx, function, *args)
        if not warp:
            return (scheduled.as_dict(),
                    f"{function} scheduled as timelock operation {scheduled.operation_id}; executable from "
                    f"{when(scheduled.ready_at)} with the same command and --execute")
        if not s.is_anvil:
            raise click.UsageError("--warp moves the chain clock: only on a local anvil")
        gov.warp_past_delay(ctx)
    executed = gov.execute_change(ctx, function, *args)
    return executed.as_dict(), f"{function} executed through the timelock (tx {executed.done.tx_hash})"


def timelock_options(fn):
    fn = click.option("--warp", is_flag=True, help="local anvil only: schedule, skip the delay, execute")(fn)
    return click.option("--execute", is_flag=True,
                        help="execute the operation scheduled earlier with the same arguments")(fn)


@governance.command("show")
@chain_options
def show(chain: ChainOptions) -> None:
    """The current signer set, threshold and market parameters."""
    s = Session(chain)
    signer_set = reads.signer_set(s.ctx)
    params = reads.params(s.ctx)
    out = {"signer_set": {"version": signer_set.version, "threshold": signer_set.threshold,
                          "signers": list(signer_set.signers)},
           "params": params, "market": s.deployment.market, "chain_id": s.chain_id,
           "timelock": s.deployment.timelock, "proposer": s.deployment.proposer,
           "timelock_delay_s": s.deployment.timelock_delay_s}
    if chain.as_json:
        print_json(out)
        return
    con = console()
    con.print(kv_table(f"signer set v{signer_set.version}: {signer_set.threshold} of {len(signer_set.signers)}",
                       [(str(i), a) for i, a in enumerate(signer_set.signers)]))
    con.print(kv_table("parameters", [(name, readable_param(name, value, s)) for name, value in params.items()]))
    min_stake = reads.min_stake_per_gpu(s.ctx, s.deployment.stake_token)
    con.print(f"minimum stake per listed GPU: {s.fmt(min_stake, s.deployment.stake_token)}")
    if s.deployment.timelock:
        from oracle.units import format_duration

        delay = format_duration(s.deployment.timelock_delay_s)
        con.print(f"governance: timelock {s.deployment.timelock}, delay {delay}, proposer {s.deployment.proposer}")


def readable_param(name: str, value: Any, s: Session) -> str:
    """A market parameter in its unit: basis points as %, durations as "1 d", the prior in tokens."""
    from oracle.units import format_bps, format_duration

    if name.endswith("Bps"):
        return f"{format_bps(int(value))} ({value} bps)"
    if name.endswith(("Timeout", "Grace", "Delay", "Duration", "Seconds")):
        return f"{format_duration(int(value))} ({value} s)"
    if name == "reputationPrior":
        return f"{s.fmt(int(value))} of fees"
    return str(value)


@governance.command("set-signers")
@click.option("--signer", "signers", multiple=True, required=True, type=ADDRESS, metavar="ADDRESS",
              help="oracle node signer (repeat; the whole new set)")
@click.option("--threshold", type=click.IntRange(1, 31), default=None, help="default: a majority")
@timelock_options
@chain_options
@wallet_options
def set_signers(signers: tuple[str, ...], threshold: int | None, execute: bool, warp: bool, chain: ChainOptions,
                wallet: WalletSpec) -> None:
    """Install a new oracle signer set (through the timelock). Bumps its version; running nodes
    follow it without a restart (settlement asks them for the chain's version; `gpurent oracle
    status` shows a node whose config still names the old one)."""
    from web3 import Web3

    ordered = sorted({Web3.to_checksum_address(a) for a in signers}, key=lambda a: int(a, 16))
    threshold = threshold or len(ordered) // 2 + 1
    out, line = _govern(chain, wallet, execute, warp, "setSignerSet", ordered, threshold)
    if out.get("state", "done") == "done":
        new = reads.signer_set(Session(chain).ctx)
        out.update({"version": new.version, "threshold": new.threshold, "signers": list(new.signers)})
        line += (f"; signer set v{new.version}: {new.threshold} of {len(new.signers)}; running nodes follow it "
                 f"(set signer_set_version = {new.version} in their configs at the next restart)")
    print_result(chain, out, line)


@governance.command("set-gpu-model")
@click.argument("model", type=NAME32)
@click.option("--power-limit-w", type=click.IntRange(0, 5000), default=None,
              help="0 removes the model (default: the model's row in oracle/gpu_models.py)")
@click.option("--memory-mib", type=uint(32, 1), default=None,
              help="the board's memory (default: the model's row in oracle/gpu_models.py)")
@timelock_options
@chain_options
@wallet_options
def set_gpu_model(model: str, power_limit_w: int | None, memory_mib: int | None, execute: bool, warp: bool,
                  chain: ChainOptions, wallet: WalletSpec) -> None:
    """Register or change a GPU model of the on-chain table (as NVML names it); offers must use
    a registered model and take its memory from the table. A model gpurent knows
    (oracle/gpu_models.py) needs neither number; any other needs both."""
    from oracle.gpu_models import GPU_MODELS

    known = {m.name: m for m in GPU_MODELS}.get(model)
    if power_limit_w is None:
        if known is None:
            raise click.UsageError(f"{model!r} is not in oracle/gpu_models.py: give --power-limit-w and --memory-mib")
        power_limit_w = known.power_limit_w
    if memory_mib is None and power_limit_w > 0:
        if known is None:
            raise click.UsageError(f"{model!r} is not in oracle/gpu_models.py: give --memory-mib (its memory, MiB)")
        memory_mib = known.memory_mib
    raw = model.encode()
    out, line = _govern(chain, wallet, execute, warp, "setGpuModel", raw.ljust(32, b"\0"), power_limit_w,
                        memory_mib or 0)
    print_result(chain, {**out, "model": model}, line)
