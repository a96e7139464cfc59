"""``gpurent oracle``: run an attestation node, make encrypted keys, ask nodes for reports."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

import click

from oracle.actions import operators, reads
from oracle.cli.options import to_option
from oracle.cli.common import (
    ADDRESS,
    ChainOptions,
    OperationFailed,
    GuardedGroup,
    Session,
    UsageProblem,
    WalletSpec,
    chain_options,
    console,
    kv_table,
    print_json,
    print_result,
    signing_session,
    wallet_options,
)
from oracle.cli.display import watch_option
from oracle.cli.params import AMOUNT, HOST, TEXT_FILE, URL


@click.group(cls=GuardedGroup)
def oracle() -> None:
    """For oracle operators: run a node, manage its key, bond, earnings."""


@oracle.command("run")
@click.option("--config", "config_file", type=TEXT_FILE, default=None,
              help="TOML or JSON node settings ($GPURENT_NODE_CONFIG); GPURENT_NODE_* variables override it")
@click.option("--host", type=HOST, default=None, help="listen address (default 127.0.0.1)")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="listen port (default 8700)")
def run(config_file: Path | None, host: str | None, port: int | None) -> None:
    """Serve an attestation node (FastAPI on uvicorn) until interrupted."""
    from oracle.errors import ConfigError
    from oracle.node.server import run_node
    from oracle.node.settings import load_settings

    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    try:
        settings = load_settings(config_file, **overrides)
    except ConfigError as exc:
        raise UsageProblem(f"node settings: {exc}; see the node config in README.md") from None
    run_node(settings)


@oracle.group("keys", cls=GuardedGroup)
def keys() -> None:
    """Encrypted keystores (Web3 Secret Storage) for node and agent keys."""


def read_new_password(password_env: str, *, dev: bool) -> str:
    password = os.environ.get(password_env)
    if password is not None:
        return password
    if not sys.stdin.isatty():
        raise UsageProblem(f"no password: set {password_env} or run interactively")
    first = getpass.getpass("new keystore password: ")
    if getpass.getpass("repeat it: ") != first:
        raise UsageProblem("the passwords differ")
    return first


@keys.command("new")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--password-env", default="GPURENT_PASSWORD", show_default=True, metavar="NAME",
              help="environment variable holding the password (prompted twice if unset)")
@click.option("--dev", is_flag=True, help="allow a weak password (local demos only)")
@click.option("--fast-kdf", is_flag=True, hidden=True, help="cheap KDF for tests")
@click.option("--json", "as_json", is_flag=True)
def keys_new(path: Path, password_env: str, dev: bool, fast_kdf: bool, as_json: bool) -> None:
    """Create a fresh key in an encrypted keystore at PATH (mode 0600, never overwritten)."""
    from oracle.keys import new_keystore

    password = read_new_password(password_env, dev=dev)
    path.parent.mkdir(parents=True, exist_ok=True)
    from oracle.keys import CHEAPEST_ACCEPTED_KDF

    kwargs = dict(CHEAPEST_ACCEPTED_KDF) if fast_kdf else {}
    address = new_keystore(path, password, dev=dev, **kwargs)
    if as_json:
        print_json({"address": address, "keystore": str(path)})
    else:
        click.echo(f"{address}  (keystore {path})")


@keys.command("show")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def keys_show(path: Path, as_json: bool) -> None:
    """The address of a keystore (no password needed)."""
    import json

    from eth_utils import to_checksum_address

    try:
        address = to_checksum_address("0x" + json.loads(path.read_text())["address"].removeprefix("0x"))
    except (ValueError, KeyError, TypeError):
        raise UsageProblem(f"{path} is not a keystore with an address field") from None
    if as_json:
        print_json({"address": address, "keystore": str(path)})
    else:
        click.echo(address)


@oracle.command("status")
@click.argument("urls", nargs=-1, required=True, type=URL)
@watch_option
@chain_options
def status(urls: tuple[str, ...], watch_s: float | None, chain: ChainOptions) -> None:
    """Whether each node at URLS can do its job: it answers and stores, follows the chain, is in
    the on-chain signer set (and which version), has gas to settle, and how settlement goes.
    Exits 1 when a node cannot do its job."""
    from oracle.cli.display import watching
    from oracle.cli.node_status import check_nodes, render

    failed: list[bool] = []

    def show() -> None:
        results = check_nodes(urls, chain)
        failed[:] = [any(c.level == "fail" for c in r.checks) for r in results]
        render(results, chain.as_json)

    watching(watch_s, show)
    if any(failed):
        bad = [url for url, f in zip(urls, failed) if f]
        raise OperationFailed(f"{len(bad)} of {len(urls)} nodes cannot do their job: {', '.join(bad)} (see above)")


@oracle.command("init-config")
@click.argument("keystore", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--password-file", type=TEXT_FILE, required=True,
              help="file whose first line is the keystore's password (mode 0600)")
@click.option("--port", type=click.IntRange(1, 65535), default=8700, show_default=True)
@click.option("--host", type=HOST, default="127.0.0.1", show_default=True)
@click.option("--public-url", type=URL, default=None, help="how peers reach this node (default http://HOST:PORT)")
@click.option("--peer", "peers", multiple=True, type=URL, help="another node of the signer set (repeat)")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="the node's SQLite database (default: beside the keystore)")
@chain_options
def init_config(keystore: Path, password_file: Path, port: int, host: str, public_url: str | None,
                peers: tuple[str, ...], db_path: Path | None, chain: ChainOptions) -> None:
    """Print a node config (TOML) for KEYSTORE on this chain's deployment: chain id, market, rpc_url,
    start block, signer-set version. `gpurent oracle init-config k.json --password-file p > node.toml`."""
    import json as json_

    s = Session(chain)
    d = s.deployment
    version = reads.signer_set(s.ctx).version
    values = {
        "keystore_path": str(keystore.resolve()), "keystore_password_file": str(Path(password_file).resolve()),
        "chain_id": s.chain_id, "market_address": d.market, "rpc_url": chain.rpc,
        "chain_start_block": int(d.block_number), "signer_set_version": version,
        "db_path": str((db_path or keystore.with_suffix(".sqlite3")).resolve()),
        "host": host, "port": port, "self_url": public_url or f"http://{host}:{port}", "peers": list(peers),
        "confirmations": 0 if s.is_anvil else 2,
    }
    if s.is_anvil:  # a local chain: settle every report quickly (a real node waits until gas is worth it)
        values.update({"settle_interval_s": 5, "settle_max_interval_s": 5, "chain_poll_interval_s": 0.5})
    lines = ["# gpurent oracle node (`gpurent oracle run --config THIS_FILE`); written by `gpurent oracle init-config`"]
    lines += [f"{key} = {json_.dumps(value)}" for key, value in values.items()]
    click.echo("\n".join(lines))


# -- the operator registry: bond, earnings, withdraw (oracle.chain.operators) ---------------------

def _operators(session: Session):
    from oracle.actions.operators import registry

    return registry(session.ctx)


@oracle.command("bond")
@click.argument("amount", type=AMOUNT)
@chain_options
@wallet_options
def bond(amount: str, chain: ChainOptions, wallet: WalletSpec) -> None:
    """Bond AMOUNT of the payment token (the operator's key) to be eligible for the signer set."""
    s = signing_session(chain, wallet)
    units = s.parse(amount)
    bonded = operators.bond(s.require_signer(), units)
    print_result(chain, {**bonded.done.tx_out(), "operator": s.address, "bonded": units, "active": bonded.active,
                         "eligible": bonded.eligible},
                 f"bonded {s.fmt(units)}; active bond {s.fmt(bonded.active)}"
                 f"{'' if bonded.eligible else ' (below the minimum: not yet eligible)'} (tx {bonded.done.tx_hash})")


@oracle.command("unbond")
@click.argument("amount", type=AMOUNT, required=False)
@click.option("--complete", is_flag=True, help="withdraw the bond whose unbonding delay has passed")
@to_option
@chain_options
@wallet_options
def unbond(amount: str | None, complete: bool, to: str | None, chain: ChainOptions, wallet: WalletSpec) -> None:
    """Start unbonding AMOUNT (default: all) of the bond, or with --complete take back what has unbonded.

    Refused while the operator is in the market's current signer set (governance rotates it out first).
    """
    s = signing_session(chain, wallet)
    ops = _operators(s)
    if complete:
        completed = operators.complete_unbond(s.require_signer(), to)
        print_result(chain, {**completed.done.tx_out(), "operator": s.address, "amount": completed.amount,
                             "to": completed.to},
                     f"unbonded {s.fmt(completed.amount)} to {completed.to} (tx {completed.done.tx_hash})")
        return
    if to is not None:
        raise click.UsageError("--to goes with --complete (where the unbonded bond is paid)")
    units = s.parse(amount) if amount else int(ops.bond_of()["active"])
    if units == 0:
        raise UsageProblem("nothing bonded to unbond")
    req = operators.request_unbond(s.require_signer(), units)
    print_result(chain, {**req.done.tx_out(), "operator": s.address, "amount": units,
                         "unbonding": req.unbonding, "release_at": req.release_at},
                 f"unbonding {s.fmt(units)}; withdraw it with `gpurent oracle unbond --complete` after "
                 f"{_utc(req.release_at)} (tx {req.done.tx_hash})")


@oracle.command("earnings")
@click.option("--operator", type=ADDRESS, default=None, help="whose earnings (default: the wallet's address)")
@chain_options
@wallet_options
def earnings(operator: str | None, chain: ChainOptions, wallet: WalletSpec) -> None:
    """Fee shares, settlement rebates and bond of an operator in the OperatorRegistry."""
    s = Session(chain, wallet if wallet.given else None)
    ops = _operators(s)
    who = operator or (s.address if s.can_sign else None)
    if who is None:
        raise UsageProblem("pass --operator ADDRESS (or a wallet: --keystore FILE / --dev-account N)")
    e = ops.earnings(s.deployment.payment_token, who)
    if chain.as_json:
        print_json(s.shown(e.as_dict(), None, ("withdrawable", "rebate_claimable", "pending_fees", "bond_active",
                                               "bond_unbonding"), ("bond_release_at",)))
        return
    console().print(kv_table(f"operator {e.operator}", [
        ("withdrawable", s.fmt(e.withdrawable)),
        ("rebate reports", f"{e.rebate_reports} (up to {s.fmt(e.rebate_claimable)} to claim)"),
        ("fees not yet synced", f"{s.fmt(e.pending_fees)} (whole signer set)"),
        ("bond", f"{s.fmt(e.bond_active)} active, {s.fmt(e.bond_unbonding)} unbonding"
                 + (f" until {_utc(e.bond_release_at)}" if e.bond_unbonding else "")),
        ("eligible for the signer set", "yes" if e.bonded else "no"),
    ]))


@oracle.command("withdraw")
@click.option("--no-sync", is_flag=True, help="do not pull the market's fees into the registry first")
@to_option
@chain_options
@wallet_options
def withdraw(no_sync: bool, to: str | None, chain: ChainOptions, wallet: WalletSpec) -> None:
    """Sync the operators' fees, claim accrued rebates, and withdraw the wallet's registry balance
    (to the wallet, or --to another address)."""
    s = signing_session(chain, wallet)
    w = operators.operator_withdraw(s.require_signer(), sync=not no_sync, to=to)
    print_result(chain, {**w.done.tx_out(), "operator": s.address, "token": w.token.address, "amount": w.amount,
                         "earlier_txs": w.earlier_txs, "to": w.to},
                 f"withdrew {s.fmt(w.amount, w.token)} to {w.to} (tx {w.done.tx_hash})")


def _utc(timestamp: int) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(timestamp))
