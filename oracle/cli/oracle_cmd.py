"""``gpurent oracle``: run an attestation node, make encrypted keys, ask nodes for reports."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

import click

from oracle.cli.common import GuardedGroup, UsageProblem, console, kv_table, print_json


@click.group(cls=GuardedGroup)
def oracle() -> None:
    """For oracle operators: run a node, manage its key."""


@oracle.command("run")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="TOML or JSON node settings ($GPURENT_NODE_CONFIG); GPURENT_NODE_* variables override it")
@click.option("--host", default=None, help="listen address (default 127.0.0.1)")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="listen port (default 8700)")
def run(config_file: Path | None, host: str | None, port: int | None) -> None:
    """Serve an attestation node (FastAPI on uvicorn) until interrupted."""
    from oracle.node.server import run_node
    from oracle.node.settings import load_settings_or_exit

    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    run_node(load_settings_or_exit(config_file, **overrides))


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
@click.argument("urls", nargs=-1, required=True)
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
