"""``gpurent``: the click group. Each subcommand lives in its own ``oracle.cli.<name>_cmd``
module and is registered below."""

from __future__ import annotations

import click

from oracle import __version__
from oracle.cli.agent_cmd import agent
from oracle.cli.chain_cmd import chain
from oracle.cli.demo_cmd import demo
from oracle.cli.deploy_cmd import deploy
from oracle.cli.governance_cmd import governance
from oracle.cli.guard import RootGroup
from oracle.cli.market_cmd import market
from oracle.cli.meter_cmd import meter
from oracle.cli.oracle_cmd import oracle
from oracle.cli.provider_cmd import provider
from oracle.cli.rent_cmd import rent
from oracle.cli.tx_cmd import tx
from oracle.cli.wallet_cmd import wallet
from oracle.cli.web_cmd import web


@click.group(name="gpurent", cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gpurent")
def main() -> None:
    """gpurent: decentralized GPU rental paid from oracle-attested GPU time and energy."""


main.add_command(meter)
for command in (chain, deploy, provider, rent, market, agent, oracle, governance, demo, tx, wallet, web):
    main.add_command(command)

if __name__ == "__main__":  # python -m oracle.cli.main
    main()
