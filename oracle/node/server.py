"""Running a node: ``run_node(settings)`` starts uvicorn; ``python -m oracle.node`` from env/config.

For ``gpurent oracle run``: ``run_node(load_settings_or_exit(config_path))``.
For uvicorn directly: ``uvicorn --factory oracle.node.server:app_from_env``.

With ``rpc_url`` in the settings the node also follows the market's events and settles by
itself (see :mod:`oracle.node.settings`); the chain side starts and stops with the server.
"""

from __future__ import annotations

import argparse
import logging
import sys

from oracle.errors import ConfigError
from oracle.node.settings import NodeSettings, load_settings_or_exit, redact_url


def _configure_logging(settings: NodeSettings) -> None:
    """The node's own log lines (settlements, RPC trouble) on stderr, unless logging is set up already."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if settings.log_level != "debug":  # one line per peer request otherwise
            logging.getLogger("httpx").setLevel(logging.WARNING)


def _app_or_exit(settings: NodeSettings):
    from oracle.node.app import create_app

    _configure_logging(settings)
    try:
        return create_app(settings)
    except ConfigError as exc:
        raise SystemExit(f"gpurent node: {exc}") from None


def describe_chain(settings: NodeSettings) -> str:
    """One line on what the node does with the chain (the RPC URL without its path or credentials)."""
    if settings.rpc_url is None:
        return f"static rentals only ({len(settings.rentals)} in the config; no rpc_url)"
    settles = (f"settles every {settings.settle_interval_s:g} s via {len(settings.aggregation_urls())} node(s)"
               if settings.submits_settlements else "does not submit settlements")
    return (f"follows {redact_url(settings.rpc_url)} from block {settings.chain_start_block}, "
            f"{settings.confirmations} confirmation(s); {settles}")


def run_node(settings: NodeSettings) -> None:
    """Serve the node on ``settings.host:settings.port`` until interrupted."""
    import uvicorn

    app = _app_or_exit(settings)
    print(f"gpurent node {app.state.node.attestor.address} on http://{settings.host}:{settings.port} "
          f"(chain {settings.chain_id}, market {settings.market_address}"
          f"{', DEV MODE' if settings.dev_mode else ''}); {describe_chain(settings)}", file=sys.stderr, flush=True)
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
