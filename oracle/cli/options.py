"""Options every chain-facing command shares: ``--rpc``/``--deployments``/``--json``, the wallet
(``--keystore``/``--password-env``/``--dev-account``), addresses and amounts in token units."""

from __future__ import annotations

import functools
import getpass
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import click

from oracle.cli.errors import UsageProblem
from oracle.errors import ConfigError

RPC_ENV = "GPURENT_RPC_URL"
KEYSTORE_ENV = "GPURENT_KEYSTORE"
PASSWORD_ENV = "GPURENT_PASSWORD"
DEV_ACCOUNT_ENV = "GPURENT_DEV_ACCOUNT"
DEFAULT_RPC = "http://127.0.0.1:8545"


# -- token amounts ------------------------------------------------------------------------------

def parse_amount(text: str, decimals: int, what: str = "amount", *, max_units: int | None = None) -> int:
    """``"12.5"`` in token units -> the integer in the token's smallest unit (exit 2 when bad)."""
    from oracle import units

    try:
        return units.parse_amount(text, decimals, what, max_units=units.UINT256_MAX if max_units is None
                                  else max_units)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None


def format_amount(units: int, decimals: int, symbol: str = "") -> str:
    from oracle.units import format_amount as fmt

    return fmt(units, decimals, symbol)


def address_type(value: str) -> str:
    from web3 import Web3

    if not isinstance(value, str) or not Web3.is_address(value):
        raise click.BadParameter(f"{value!r} is not a 20-byte hex address (0x + 40 hex digits)")
    return Web3.to_checksum_address(value)


class AddressParam(click.ParamType):
    name = "ADDRESS"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        try:
            return address_type(value)
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)


ADDRESS = AddressParam()


# -- wallets ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WalletSpec:
    """Where a command's signing key comes from: a keystore file or a local dev account."""

    keystore: Path | None = None
    password_env: str = PASSWORD_ENV
    dev_account: int | None = None

    @property
    def given(self) -> bool:
        return self.keystore is not None or self.dev_account is not None

    def describe(self) -> str:
        if self.dev_account is not None:
            return f"dev account {self.dev_account}"
        return str(self.keystore)

    def private_key(self, *, is_dev_chain: bool) -> bytes:
        if self.keystore is not None and self.dev_account is not None:
            raise ConfigError("pass --keystore or --dev-account, not both")
        if self.dev_account is not None:
            if not is_dev_chain:
                raise ConfigError("--dev-account uses anvil's public dev keys and only works on a local anvil "
                                  "chain; use --keystore for this network")
            from oracle.localchain import dev_key

            return bytes.fromhex(dev_key(self.dev_account)[2:])
        if self.keystore is None:
            raise ConfigError(f"this command signs a transaction: pass --keystore FILE (or set {KEYSTORE_ENV}), "
                              "or --dev-account N on a local anvil")
        from oracle.keys import load_keystore

        password = os.environ.get(self.password_env)
        if password is None:
            if not sys.stdin.isatty():
                raise ConfigError(f"no password for {self.keystore}: set {self.password_env} (or run interactively)")
            password = getpass.getpass(f"password for {self.keystore}: ")
        return load_keystore(self.keystore, password)


def wallet_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--keystore / --password-env / --dev-account, collected into ``wallet: WalletSpec``."""

    @click.option("--keystore", type=click.Path(dir_okay=False, path_type=Path), envvar=KEYSTORE_ENV,
                  help=f"encrypted keystore (Web3 Secret Storage) holding the account [env {KEYSTORE_ENV}]")
    @click.option("--password-env", default=PASSWORD_ENV, show_default=True, metavar="NAME",
                  help="environment variable holding the keystore password (prompted if unset)")
    @click.option("--dev-account", type=click.IntRange(0, 9), envvar=DEV_ACCOUNT_ENV, default=None,
                  help=f"use anvil dev account N (local anvil only) [env {DEV_ACCOUNT_ENV}]")
    @functools.wraps(fn)
    def wrapper(*args: Any, keystore: Path | None, password_env: str, dev_account: int | None, **kwargs: Any) -> Any:
        kwargs["wallet"] = WalletSpec(keystore, password_env, dev_account)
        return fn(*args, **kwargs)

    return wrapper


def _url_type() -> click.ParamType:
    from oracle.cli.params import URL

    return URL


def chain_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--rpc / --deployments / --json, collected into ``chain: ChainOptions``."""

    @click.option("--rpc", default=DEFAULT_RPC, envvar=RPC_ENV, show_default=True, type=_url_type(),
                  help=f"JSON-RPC endpoint of the chain [env {RPC_ENV}]")
    @click.option("--deployments", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="deployment file (default: $GPURENT_DEPLOYMENTS or ~/.gpurent/deployments.json)")
    @click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of text")
    @functools.wraps(fn)
    def wrapper(*args: Any, rpc: str, deployments: Path | None, as_json: bool, **kwargs: Any) -> Any:
        kwargs["chain"] = ChainOptions(rpc, deployments, as_json)
        return fn(*args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class ChainOptions:
    rpc: str
    deployments: Path | None
    as_json: bool


def text_bytes32(text: str, what: str = "text") -> bytes:
    raw = text.encode()
    if len(raw) > 32:
        raise UsageProblem(f"{what} {text!r} is longer than 32 bytes")
    return raw.ljust(32, b"\0")


def bytes32_text(value: bytes | str) -> str:
    if isinstance(value, str):
        return value
    return bytes(value).rstrip(b"\0").decode(errors="replace")


def to_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--to ADDRESS``: where a withdrawal is paid (a payee the token blocks names another address)."""
    return click.option("--to", type=ADDRESS, default=None,
                        help="pay to this address instead of your own (e.g. when the token blocks yours)")(fn)
