"""``gpurent oracle``: run an attestation node, make encrypted keys, ask nodes for reports."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

import click

from oracle.actions import operators
from oracle.cli.common import (
    ADDRESS,
    ChainOptions,
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
@click.option("--json", "as_json", is_flag=True)
def status(urls: tuple[str, ...], as_json: bool) -> None:
    """Health, signer and domain of each node URL."""
    import httpx

    out = []
    for url in urls:
        url = url.rstrip("/")
        try:
            info = httpx.get(f"{url}/v1/node", timeout=5).json()
            health = httpx.get(f"{url}/healthz", timeout=5).json().get("status")
        except (httpx.HTTPError, ValueError) as exc:
            out.append({"url": url, "status": f"unreachable: {exc}"})
            continue
        out.append({"url": url, "status": health, **info})
    if as_json:
        print_json(out)
        return
    for node in out:
        console().print(kv_table(node["url"], [(k, v) for k, v in node.items() if k != "url"]))


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
@chain_options
@wallet_options
def unbond(amount: str | None, complete: bool, chain: ChainOptions, wallet: WalletSpec) -> None:
    """Start unbonding AMOUNT (default: all) of the bond, or with --complete take back what has unbonded.

    Refused while the operator is in the market's current signer set (governance rotates it out first).
    """
    s = signing_session(chain, wallet)
    ops = _operators(s)
    if complete:
        completed = operators.complete_unbond(s.require_signer())
        print_result(chain, {**completed.done.tx_out(), "operator": s.address, "amount": completed.amount},
                     f"unbonded {s.fmt(completed.amount)} to {s.address} (tx {completed.done.tx_hash})")
        return
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
        print_json(e.as_dict())
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
@chain_options
@wallet_options
def withdraw(no_sync: bool, chain: ChainOptions, wallet: WalletSpec) -> None:
    """Sync the operators' fees, claim accrued rebates, and withdraw the wallet's registry balance."""
    s = signing_session(chain, wallet)
    w = operators.operator_withdraw(s.require_signer(), sync=not no_sync)
    print_result(chain, {**w.done.tx_out(), "operator": s.address, "token": w.token.address, "amount": w.amount,
                         "earlier_txs": w.earlier_txs},
                 f"withdrew {s.fmt(w.amount, w.token)} to {s.address} (tx {w.done.tx_hash})")


def _utc(timestamp: int) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(timestamp))
