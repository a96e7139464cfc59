"""``gpurent``: the click group. Each subcommand lives in its own ``oracle.cli.<name>_cmd``
module and is registered below."""

from __future__ import annotations

import click

from oracle import __version__
from oracle.cli.meter_cmd import meter


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gpurent")
def main() -> None:
    """gpurent: decentralized GPU rental paid from oracle-attested GPU time and energy."""


main.add_command(meter)

if __name__ == "__main__":  # python -m oracle.cli.main
    main()
