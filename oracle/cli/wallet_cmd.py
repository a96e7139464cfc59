"""``gpurent wallet new|import|balance``: an encrypted keystore for a renter, a provider or an
operator, and what an address holds (gas, the market's tokens, what it can withdraw)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from oracle.actions import reads
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
    wallet_options,
)

PRIVATE_KEY_ENV = "GPURENT_PRIVATE_KEY"


@click.group(cls=GuardedGroup)
def wallet() -> None:
    """Make or import an encrypted wallet, and see what an address holds."""


def _keystore_options(fn: Any) -> Any:
    fn = click.option("--fast-kdf", is_flag=True, hidden=True, help="cheap KDF for tests")(fn)
    fn = click.option("--dev", is_flag=True, help="allow a weak password (local demos only)")(fn)
    fn = click.option("--password-env", default="GPURENT_PASSWORD", show_default=True, metavar="NAME",
                      help="environment variable holding the new password (prompted twice if unset)")(fn)
    return click.option("--json", "as_json", is_flag=True)(fn)


def _write(path: Path, key: bytes | None, password_env: str, dev: bool, fast_kdf: bool) -> str:
    from oracle.cli.oracle_cmd import read_new_password
    from oracle.keys import CHEAPEST_ACCEPTED_KDF, new_keystore

    if path.exists():
        raise UsageProblem(f"{path} exists; a wallet is never overwritten (choose another path)")
    password = read_new_password(password_env, dev=dev)
    path.parent.mkdir(parents=True, exist_ok=True)
    return new_keystore(path, password, private_key=key, dev=dev, **(dict(CHEAPEST_ACCEPTED_KDF) if fast_kdf else {}))


def _report(address: str, path: Path, as_json: bool, what: str) -> None:
    if as_json:
        print_json({"address": address, "keystore": str(path)})
        return
    click.echo(f"{what} {address} in {path} (mode 0600); use it with --keystore {path}")
    click.echo(f"on a local chain, give it gas and test tokens: gpurent chain fund {address}")


@wallet.command("new")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@_keystore_options
def new(path: Path, password_env: str, dev: bool, fast_kdf: bool, as_json: bool) -> None:
    """A fresh key in an encrypted keystore at PATH (never overwritten)."""
    _report(_write(path, None, password_env, dev, fast_kdf), path, as_json, "new wallet")


@wallet.command("import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--key-env", default=PRIVATE_KEY_ENV, show_default=True, metavar="NAME",
              help="environment variable holding the private key (else read from stdin); never an argument, "
                   "so it stays out of the shell history")
@_keystore_options
def import_(path: Path, key_env: str, password_env: str, dev: bool, fast_kdf: bool, as_json: bool) -> None:
    """Encrypt an existing private key (hex, 0x optional) into a keystore at PATH."""
    text = os.environ.get(key_env)
    if text is None:
        if sys.stdin.isatty():
            import getpass

            text = getpass.getpass("private key (hex): ")
        else:
            text = sys.stdin.readline()
    raw = text.strip().removeprefix("0x")
    try:
        key = bytes.fromhex(raw)
    except ValueError:
        key = b""
    if len(key) != 32 or int.from_bytes(key, "big") == 0:
        raise UsageProblem(f"the private key (${key_env} or stdin) must be 32 bytes of hex (64 hex digits)")
    _report(_write(path, key, password_env, dev, fast_kdf), path, as_json, "imported wallet")


@wallet.command("balance")
@click.argument("address", type=ADDRESS, required=False)
@chain_options
@wallet_options
def balance(address: str | None, chain: ChainOptions, wallet: WalletSpec) -> None:
    """Gas, the market's payment and stake tokens, and what ADDRESS (default: your wallet) can
    withdraw from the market."""
    from oracle.chain.tokens import balance_of
    from oracle.units import format_amount

    s = Session(chain, wallet if wallet.given else None)
    address = s.address_or_own(address, "wallet")
    wei = int(s.w3.eth.get_balance(address))
    out: dict[str, Any] = {"address": address, "chain_id": s.chain_id, "eth_wei": wei,
                           "eth_display": format_amount(wei, 18, "ETH"), "tokens": []}
    pay, stake = s.token(), s.token(s.deployment.stake_token)
    for meta in ([pay] if stake.address.lower() == pay.address.lower() else [pay, stake]):
        held = balance_of(s.w3, meta.address, address)
        withdrawable = reads.withdrawable(s.ctx, address, meta.address)
        out["tokens"].append({"token": meta.address, "symbol": meta.symbol, "balance": held,
                              "balance_display": format_amount(held, meta.decimals, meta.symbol),
                              "withdrawable": withdrawable,
                              "withdrawable_display": format_amount(withdrawable, meta.decimals, meta.symbol)})
    if chain.as_json:
        print_json(out)
        return
    rows = [("gas (ETH)", out["eth_display"] + ("  (none: `gpurent chain fund` on a local chain)" if not wei else ""))]
    for t in out["tokens"]:
        rows.append((f"{t['symbol'] or t['token']} in the wallet", t["balance_display"]))
        rows.append((f"{t['symbol'] or t['token']} withdrawable from the market", t["withdrawable_display"]))
    console().print(kv_table(f"{address} on chain {s.chain_id}", rows))
