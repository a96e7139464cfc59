"""``gpurent provider serve --config provider.toml``: the provider daemon (oracle.provider)."""

from __future__ import annotations

from pathlib import Path

import click

from oracle.cli.common import GuardedCommand


@click.command("serve", cls=GuardedCommand)
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="provider.toml (see docs/provider.toml.example)")
def serve(config_path: Path) -> None:
    """Run the provider daemon: accept rentals on your offers, run renters' containers on the rented
    GPUs, run their telemetry, stop them when rentals end; re-adopts its containers after a restart."""
    from oracle.provider.config import load_provider_config
    from oracle.provider.serve import serve as run

    raise SystemExit(run(load_provider_config(config_path)))
