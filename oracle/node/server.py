"""Running a node: ``run_node(settings)`` starts uvicorn; ``python -m oracle.node`` from env/config.

For ``gpurent oracle run``: ``run_node(load_settings_or_exit(config_path))``.
With another host/port or app factory (tests): ``python -m oracle.node.server --factory
oracle.node.server:app_from_env --host 127.0.0.1 --port 8700``. Both serve through
:func:`oracle.node.serving.serve` (header timeout, connection limits); plain
``uvicorn --factory oracle.node.server:app_from_env`` works but without those limits.

With ``rpc_url`` in the settings the node also follows the market's events and settles by
itself (see :mod:`oracle.node.settings`); the chain side starts and stops with the server.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from oracle.errors import ConfigError
from oracle.node.serving import ServerLimits, serve
from oracle.node.settings import NodeSettings, load_settings_or_exit
from oracle.redact import install_log_redaction, redact_url


def _configure_logging(settings: NodeSettings) -> None:
    """The node's own log lines (settlements, RPC trouble) on stderr, unless logging is set up already."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if settings.log_level != "debug":  # one line per peer request otherwise
            logging.getLogger("httpx").setLevel(logging.WARNING)
    install_log_redaction()


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
    app = _app_or_exit(settings)
    print(f"gpurent node {app.state.node.attestor.address} on http://{settings.host}:{settings.port} "
          f"(chain {settings.chain_id}, market {settings.market_address}"
          f"{', DEV MODE' if settings.dev_mode else ''}); {describe_chain(settings)}", file=sys.stderr, flush=True)
    serve(app, settings.host, settings.port, ServerLimits.from_settings(settings), log_level=settings.log_level,
          access_log=settings.log_level == "debug")


def app_from_env():
    """uvicorn factory: settings from ``GPURENT_NODE_*`` (and ``GPURENT_NODE_CONFIG``)."""
    return _app_or_exit(load_settings_or_exit())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m oracle.node", description="Run a gpurent attestation node.")
    parser.add_argument("--config", help="TOML or JSON settings file (env GPURENT_NODE_* override it)")
    parser.add_argument("--factory", help="module:function returning the ASGI app (instead of the node's settings)")
    parser.add_argument("--host", default="127.0.0.1", help="with --factory")
    parser.add_argument("--port", type=int, default=8700, help="with --factory")
    parser.add_argument("--log-level", default="warning", help="with --factory")
    args = parser.parse_args(argv)
    if args.factory is None:
        run_node(load_settings_or_exit(args.config))
        return
    module_name, _, function = args.factory.partition(":")
    app = getattr(importlib.import_module(module_name), function)()
    node = getattr(getattr(app, "state", None), "node", None)  # the node's app: its settings' limits
    limits = ServerLimits.from_settings(node.settings) if node is not None else ServerLimits()
    serve(app, args.host, args.port, limits, log_level=args.log_level)


if __name__ == "__main__":
    main()
