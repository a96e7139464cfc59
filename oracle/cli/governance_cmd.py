"""``gpurent governance``: the oracle signer set and the market parameters (governance role)."""

from __future__ import annotations

import click

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


@click.group(cls=GuardedGroup)
def governance() -> None:
    """For the governance role (meant for a multisig or timelock): signer set and parameters."""


@governance.command("show")
@chain_options
def show(chain: ChainOptions) -> None:
    """The current signer set, threshold and market parameters."""
    s = Session(chain)
    signer_set = s.client.signer_set()
    params = s.client.params()
    out = {"signer_set": {"version": signer_set.version, "threshold": signer_set.threshold,
                          "signers": list(signer_set.signers)},
           "params": params, "market": s.deployment.market, "chain_id": s.chain_id}
    if chain.as_json:
        print_json(out)
        return
    con = console()
    con.print(kv_table(f"signer set v{signer_set.version}: {signer_set.threshold} of {len(signer_set.signers)}",
                       [(str(i), a) for i, a in enumerate(signer_set.signers)]))
    con.print(kv_table("parameters", list(params.items())))


@governance.command("set-signers")
@click.option("--signer", "signers", multiple=True, required=True, type=ADDRESS, metavar="ADDRESS",
              help="oracle node signer (repeat; the whole new set)")
@click.option("--threshold", type=click.IntRange(1, 31), default=None, help="default: a majority")
@chain_options
@wallet_options
def set_signers(signers: tuple[str, ...], threshold: int | None, chain: ChainOptions, wallet: WalletSpec) -> None:
    """Install a new oracle signer set. Bumps its version: every signature made for the old set
    stops counting, so nodes must be restarted with the new signer_set_version."""
    s = signing_session(chain, wallet)
    threshold = threshold or len(set(signers)) // 2 + 1
    result = s.client.set_signer_set(signers, threshold)
    new = s.client.signer_set()
    out = {**s.tx_out(result), "version": new.version, "threshold": new.threshold, "signers": list(new.signers)}
    print_result(chain, out, f"signer set v{new.version}: {new.threshold} of {len(new.signers)} (tx {result.tx_hash}); "
                             f"set signer_set_version = {new.version} on every node")
