"""``gpurent rent`` for a running workload: the workload options of ``rent open``, and
``connection``, ``exec``, ``logs``, ``cp`` and ``ssh`` through the provider daemon.

Every request is signed with the renter's wallet key (the one that opened the rental); the daemon
checks it against the rental's renter on chain. The daemon's URL comes from ``--provider-url``,
``$GPURENT_PROVIDER_URL``, or what ``rent open`` remembered for the rental.
"""

from __future__ import annotations

import functools
import io
import os
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import click

from oracle.cli.params import ID, URL, uint
from oracle.cli.common import ChainOptions, GuardedCommand, Session, WalletSpec, chain_options, print_json, \
    signing_session, wallet_options

PROVIDER_URL_ENV = "GPURENT_PROVIDER_URL"


@dataclass(frozen=True)
class WorkloadRequest:
    image: str | None
    cmd: tuple[str, ...]
    env: tuple[str, ...]
    ssh_key: Path | None
    preset: str
    provider_url: str | None

    def spec(self) -> Any:
        """The WorkloadSpec these options describe, or None when no --image was given."""
        from oracle.provider.workload import WorkloadSpec

        if self.image is None:
            if self.cmd or self.env or self.ssh_key or self.preset != "none":
                raise click.UsageError("--cmd/--env/--ssh-key/--preset need --image")
            return None
        env = {}
        for item in self.env:
            name, sep, value = item.partition("=")
            if not sep:
                raise click.UsageError(f"--env {item!r}: expected NAME=VALUE")
            env[name] = value
        key = self.ssh_key.expanduser().read_text().strip() if self.ssh_key else None
        import shlex

        cmd = None
        if self.cmd:
            cmd = list(self.cmd) if len(self.cmd) > 1 else shlex.split(self.cmd[0])
        from pydantic import ValidationError

        try:
            return WorkloadSpec(image=self.image, cmd=cmd, env=env, ssh_public_key=key, preset=self.preset)
        except ValidationError as exc:
            raise click.UsageError(f"invalid workload: {exc.errors()[0]['msg']}") from None


def workload_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--image/--cmd/--env/--ssh-key/--preset/--provider-url, collected into ``workload``."""

    @click.option("--image", default=None, help="container image to run on the rented GPUs")
    @click.option("--cmd", "cmd", multiple=True, help="command (one shell-quoted string, or repeat per argument)")
    @click.option("--env", "env", multiple=True, metavar="NAME=VALUE", help="environment variable (repeatable)")
    @click.option("--ssh-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                  help="your SSH public key (~/.ssh/id_ed25519.pub), installed as root's authorized key")
    @click.option("--preset", type=click.Choice(["none", "shell", "jupyter"]), default="none", show_default=True,
                  help="shell: keep the container up for exec/ssh; jupyter: JupyterLab on 127.0.0.1:8888")
    @click.option("--provider-url", envvar=PROVIDER_URL_ENV, default=None, type=URL,
                  help=f"the provider daemon's URL (from the provider) [env {PROVIDER_URL_ENV}]")
    @functools.wraps(fn)
    def wrapper(*args: Any, image: str | None, cmd: tuple[str, ...], env: tuple[str, ...], ssh_key: Path | None,
                preset: str, provider_url: str | None, **kwargs: Any) -> Any:
        kwargs["workload"] = WorkloadRequest(image, cmd, env, ssh_key, preset, provider_url)
        return fn(*args, **kwargs)

    return wrapper


def _client(s: Session, rental_id: int, provider_url: str | None) -> Any:
    from oracle.provider.client import ProviderClient, provider_url_for

    url = provider_url_for(s.chain_id, rental_id, provider_url)
    return ProviderClient(url, bytes(s.sender.account.key), s.chain_id, s.deployment.market)


def send_workload(s: Session, rental_id: int, offer: dict[str, Any], spec: Any, provider_url: str | None) -> dict:
    """After ``openRental``: seal the spec to the offer's agent key and upload it to the daemon."""
    from oracle.provider.client import remember_provider_url

    if not provider_url:
        raise click.UsageError(f"a workload needs --provider-url (or ${PROVIDER_URL_ENV}): the provider daemon's URL")
    remember_provider_url(s.chain_id, rental_id, provider_url)
    client = _client(s, rental_id, provider_url)
    try:
        return client.upload_workload(rental_id, spec, offer["agent"])
    finally:
        client.close()


def provider_url_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--provider-url", envvar=PROVIDER_URL_ENV, default=None, type=URL,
                        help="the provider daemon's URL (default: the one `rent open` used)")(fn)


@click.command("connection", cls=GuardedCommand)
@click.argument("rental_id", type=ID)
@provider_url_option
@chain_options
@wallet_options
def connection(rental_id: int, provider_url: str | None, chain: ChainOptions, wallet: WalletSpec) -> None:
    """Connection details of RENTAL_ID (sealed by the daemon to your key, opened here)."""
    s = signing_session(chain, wallet)
    details = _client(s, rental_id, provider_url).connection(rental_id)
    print_json(details) if chain.as_json else [click.echo(f"{k}: {v}") for k, v in details.items()]


@click.command("exec", cls=GuardedCommand, context_settings={"ignore_unknown_options": True})
@click.argument("rental_id", type=ID)
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--workdir", default=None)
@provider_url_option
@chain_options
@wallet_options
def exec_(rental_id: int, cmd: tuple[str, ...], workdir: str | None, provider_url: str | None, chain: ChainOptions,
          wallet: WalletSpec) -> None:
    """Run CMD in the rental's container: `gpurent rent exec 7 -- nvidia-smi -L`. Exits with its code."""
    s = signing_session(chain, wallet)
    code, out, err = _client(s, rental_id, provider_url).exec(rental_id, list(cmd), workdir)
    if chain.as_json:
        print_json({"exit_code": code, "stdout": out.decode(errors="replace"), "stderr": err.decode(errors="replace")})
    else:
        sys.stdout.buffer.write(out)
        sys.stdout.flush()
        sys.stderr.buffer.write(err)
    sys.exit(code)


@click.command("logs", cls=GuardedCommand)
@click.argument("rental_id", type=ID)
@click.option("--follow", "-f", is_flag=True, help="keep streaming until the container stops")
@click.option("--tail", type=uint(32), default=None, help="only the last N lines")
@provider_url_option
@chain_options
@wallet_options
def logs(rental_id: int, follow: bool, tail: int | None, provider_url: str | None, chain: ChainOptions,
         wallet: WalletSpec) -> None:
    """The container's output (stdout and stderr)."""
    s = signing_session(chain, wallet)
    for chunk in _client(s, rental_id, provider_url).logs(rental_id, follow=follow, tail=tail):
        sys.stdout.buffer.write(chunk)
        sys.stdout.flush()


@click.command("cp", cls=GuardedCommand)
@click.argument("rental_id", type=ID)
@click.argument("src")
@click.argument("dest")
@provider_url_option
@chain_options
@wallet_options
def cp(rental_id: int, src: str, dest: str, provider_url: str | None, chain: ChainOptions, wallet: WalletSpec) -> None:
    """Copy in (`rent cp 7 ./data :/root/`) or out (`rent cp 7 :/root/out.txt ./`); ':' marks the container."""
    s = signing_session(chain, wallet)
    client = _client(s, rental_id, provider_url)
    if dest.startswith(":") and not src.startswith(":"):
        local, remote = Path(src), dest[1:]
        if not local.exists():
            raise click.UsageError(f"{local} does not exist")
        into, name = (remote, local.name) if remote.endswith("/") else (os.path.dirname(remote) or "/",
                                                                         os.path.basename(remote))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(str(local), arcname=name)
        client.put_archive(rental_id, into, buf.getvalue())
        click.echo(f"copied {local} to rental {rental_id}:{into.rstrip('/')}/{name}")
    elif src.startswith(":") and not dest.startswith(":"):
        data = client.get_archive(rental_id, src[1:])
        target = Path(dest)
        target.mkdir(parents=True, exist_ok=True) if dest.endswith("/") or target.is_dir() else None
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            if target.is_dir():
                tar.extractall(target, filter="data")
            else:
                member = tar.getmembers()[0]
                extracted = tar.extractfile(member)
                if extracted is None:
                    raise click.UsageError(f"{src[1:]} is a directory: give a local directory as DEST")
                target.write_bytes(extracted.read())
        click.echo(f"copied rental {rental_id}:{src[1:]} to {target}")
    else:
        raise click.UsageError("exactly one of SRC and DEST must name the container (prefix ':')")


@click.command("ssh", cls=GuardedCommand)
@click.argument("rental_id", type=ID)
@provider_url_option
@chain_options
@wallet_options
def ssh(rental_id: int, provider_url: str | None, chain: ChainOptions, wallet: WalletSpec) -> None:
    """An interactive shell on a TTY in the rental's container, through the daemon's signed endpoint
    (a websocket; not sshd: with network `none` nothing else reaches the container). Exit with `exit`
    or Ctrl-D; piped input runs as a script."""
    s = signing_session(chain, wallet)
    client = _client(s, rental_id, provider_url)
    stdin = sys.stdin.buffer
    if not stdin.isatty():
        client.shell(rental_id, stdin, sys.stdout.buffer)
        return
    import termios
    import tty

    saved = termios.tcgetattr(stdin.fileno())
    click.echo(f"rental {rental_id}: shell through {client.url} (Ctrl-D or `exit` to leave)", err=True)
    try:
        tty.setraw(stdin.fileno())
        client.shell(rental_id, stdin, sys.stdout.buffer)
    finally:
        termios.tcsetattr(stdin.fileno(), termios.TCSADRAIN, saved)


ACCESS_COMMANDS = (connection, exec_, logs, cp, ssh)
