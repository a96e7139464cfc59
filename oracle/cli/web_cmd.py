"""``gpurent web``: the web app (market, rentals, dashboards) against the configured chain."""

from __future__ import annotations

from pathlib import Path

import click

from oracle.cli.common import DEFAULT_RPC, RPC_ENV, GuardedCommand, OperationFailed
from oracle.cli.params import HOST, URL, uint


@click.command(cls=GuardedCommand)
@click.option("--port", type=click.IntRange(0, 65535), default=8780, show_default=True,
              help="HTTP port (0: a free one)")
@click.option("--host", type=HOST, default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--rpc", type=URL, default=DEFAULT_RPC, envvar=RPC_ENV, show_default=True,
              help=f"JSON-RPC endpoint of the chain [env {RPC_ENV}]")
@click.option("--deployment", "--deployments", "deployments", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="deployment file (default: $GPURENT_DEPLOYMENTS or ~/.gpurent/deployments.json)")
@click.option("--node", "nodes", multiple=True, type=URL,
              help="an oracle node's URL (repeat; health on the operators page)")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where the event index lives (default: $GPURENT_HOME/web/<chain id>)")
@click.option("--confirmations", type=uint(16), default=None,
              help="blocks on top before an event is indexed (default: 0 on anvil, else 2)")
def web(port: int, host: str, rpc: str, deployments: Path | None, nodes: tuple[str, ...], data_dir: Path | None,
        confirmations: int | None) -> None:
    """Serve the gpurent web app: the market, a rental's live view, provider and operator pages,
    and wallet transactions (the browser's wallet signs; no key reaches the server)."""
    from oracle.chain.contract import connect
    from oracle.deployment import gpurent_home, load_deployment
    from oracle.web.server import WebServer, config_from_deployment

    w3 = connect(rpc)
    try:
        chain_id = int(w3.eth.chain_id)
        client = str(w3.client_version).lower()
    except Exception as exc:
        raise OperationFailed(f"cannot reach the RPC at {rpc} ({type(exc).__name__}); is the chain running?") from None
    deployment = load_deployment(chain_id, deployments)
    if confirmations is None:
        confirmations = 0 if client.startswith("anvil") else 2
    data_dir = data_dir or gpurent_home() / "web" / str(chain_id)
    server = WebServer(rpc, config_from_deployment(deployment, list(nodes)), data_dir, host=host, port=port,
                       confirmations=confirmations)
    click.echo(f"gpurent web: http://{host}:{port}/ (chain {chain_id}, market {deployment.market}, index {data_dir})")
    server.serve_forever()
