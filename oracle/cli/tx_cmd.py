"""``gpurent tx status``: the transactions gpurent recorded before sending them (the journal,
``$GPURENT_HOME/journal``), and what the chain says became of each. After an interrupted command
this shows what was sent; running that command again picks it up instead of sending it twice."""

from __future__ import annotations

import time

import click

from oracle.cli.common import (
    ADDRESS,
    ChainOptions,
    GuardedGroup,
    Session,
    chain_options,
    console,
    print_json,
    table,
)


@click.group(cls=GuardedGroup)
def tx() -> None:
    """Transactions gpurent sent (its journal) and their state on chain."""


@tx.command("status")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--account", type=ADDRESS, default=None, help="only this sender's transactions")
@chain_options
def status(limit: int, account: str | None, chain: ChainOptions) -> None:
    """The most recent journaled transactions of this chain's market (and its deployments)."""
    from oracle.actions.txstatus import tx_status

    from oracle.deployment import DeploymentError

    try:
        s = Session(chain)
    except DeploymentError:  # nothing deployed here yet: only deployments were journaled
        s = Session(chain, need_deployment=False)
    states = tx_status(s.ctx, limit=limit, account=account)
    if chain.as_json:
        print_json({"chain_id": s.chain_id, "transactions": [st.as_dict() for st in states]})
        return
    if not states:
        click.echo("no transactions recorded for this chain")
        return
    console().print(table(f"transactions on chain {s.chain_id} (newest first)",
                          ["when (UTC)", "action", "step", "nonce", "tx", "on chain", "note"],
                          [(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(st.created_at)), st.action, st.step,
                            st.nonce, st.tx_hash, st.chain_state + (f" (block {st.block_number})" if st.block_number
                                                                    else ""),
                            "interrupted: run the same command again to finish it" if st.attempt_open else "")
                           for st in states]))
