"""Running the web app: config from the deployment file, the indexer in the background, uvicorn.

:class:`WebServer` is what ``gpurent web`` runs and what tests and the demo start in-process
(``start()`` serves on a thread, ``stop()`` ends it and the indexer).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from oracle.chain.contract import connect
from oracle.deployment import EXPLORERS, NETWORK_NAMES, Deployment
from oracle.web.app import create_app
from oracle.web.indexer import ChainIndexer, IndexTarget, index_path
from oracle.web.state import WebConfig, WebState
from oracle.web.store import IndexStore

log = logging.getLogger(__name__)

DEFAULT_PORT = 8780


def config_from_deployment(deployment: Deployment, nodes: list[str] | None = None) -> WebConfig:
    tokens: dict[str, tuple[str, int]] = {}
    if deployment.payment_token and deployment.payment_token_symbol:
        tokens[deployment.payment_token] = (deployment.payment_token_symbol, int(deployment.payment_token_decimals))
    return WebConfig(
        chain_id=int(deployment.chain_id), market=deployment.market, start_block=int(deployment.block_number or 0),
        timelock=deployment.timelock or None, operator_registry=deployment.operator_registry or None,
        network=deployment.network or NETWORK_NAMES.get(int(deployment.chain_id), ""),
        explorer=EXPLORERS.get(int(deployment.chain_id)), nodes=list(nodes or []), tokens=tokens,
        default_token=deployment.payment_token or None, stake_token=deployment.stake_token or None,
        deployment=deployment,
    )


class WebServer:
    """The indexer + the app on ``host:port`` (port 0: a free one, see ``url`` after ``start``)."""

    def __init__(self, rpc_url: str, config: WebConfig, data_dir: str | Path, *, host: str = "127.0.0.1",
                 port: int = DEFAULT_PORT, confirmations: int = 2, poll_interval_s: float = 1.0) -> None:
        self.w3 = connect(rpc_url)
        self.config = config
        self.store = IndexStore(index_path(data_dir))
        target = IndexTarget(config.chain_id, config.market, config.start_block, config.timelock,
                             config.operator_registry)
        self.indexer = ChainIndexer(self.w3, target, self.store, confirmations=confirmations,
                                    poll_interval_s=poll_interval_s)
        self.state = WebState(config, self.store, w3=self.w3, indexer=self.indexer)
        self.app = create_app(self.state)
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _uvicorn(self) -> uvicorn.Server:
        cfg = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning", access_log=False)
        return uvicorn.Server(cfg)

    def serve_forever(self) -> None:
        """Foreground (``gpurent web``): index in the background, serve until interrupted."""
        self.indexer.start()
        try:
            self._uvicorn().run()
        finally:
            self.indexer.stop()
            self.store.close()

    def start(self, timeout_s: float = 20.0) -> "WebServer":
        """Background: serve on a thread; returns once the port answers."""
        if self.port == 0:
            from oracle.chain.anvil import free_port

            self.port = free_port()
        self.indexer.start()
        self._server = self._uvicorn()
        self._thread = threading.Thread(target=self._server.run, name="gpurent-web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.stop()
                raise RuntimeError(f"gpurent web did not start on {self.url}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.indexer.stop()
        self.store.close()

    def __enter__(self) -> "WebServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def web_command(rpc_url: str, port: int, node_urls: list[str], deployments: str | Path) -> list[str]:
    """``gpurent web`` as a child process's argv (the demo starts it beside its nodes)."""
    import sys

    argv = [sys.executable, "-m", "oracle.cli.main", "web", "--port", str(port), "--rpc", rpc_url,
            "--deployment", str(deployments)]
    for url in node_urls:
        argv += ["--node", url]
    return argv
