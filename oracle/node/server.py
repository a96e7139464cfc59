"""Running a node: ``run_node(settings)`` starts uvicorn; ``python -m oracle.node`` from env/config.

For ``gpurent oracle run``: ``run_node(load_settings_or_exit(config_path))``.
For uvicorn directly: ``uvicorn --factory oracle.node.server:app_from_env``.
"""

from __future__ import annotations

import argparse
import sys

from oracle.errors import ConfigError
from oracle.node.settings import NodeSettings, load_settings_or_exit


def _app_or_exit(settings: NodeSettings):
    from oracle.node.app import create_app

    try:
        return create_app(settings)
    except ConfigError as exc:
        raise SystemExit(f"gpurent node: {exc}") from None


def run_node(settings: NodeSettings) -> None:
    """Serve the node on ``settings.host:settings.port`` until interrupted."""
    import uvicorn

    app = _app_or_exit(settings)
    print(f"gpurent node {app.state.node.attestor.address} on http://{settings.host}:{settings.port} "
          f"(chain {settings.chain_id}, market {settings.market_address}"
          f"{', DEV MODE' if settings.dev_mode else ''})", file=sys.stderr, flush=True)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
    )


def app_from_env():
    """uvicorn factory: settings from ``GPURENT_NODE_*`` (and ``GPURENT_NODE_CONFIG``)."""
    return _app_or_exit(load_settings_or_exit())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m oracle.node", description="Run a gpurent attestation node.")
    parser.add_argument("--config", help="TOML or JSON settings file (env GPURENT_NODE_* override it)")
    args = parser.parse_args(argv)
    run_node(load_settings_or_exit(args.config))


if __name__ == "__main__":
    main()
