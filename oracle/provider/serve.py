"""``gpurent provider serve``: build the daemon from ``provider.toml`` and run it with its HTTP
endpoint until SIGINT/SIGTERM. On the way out the agents drain; containers keep running."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Any

from oracle.provider.config import ProviderConfig

log = logging.getLogger(__name__)


def build_daemon(config: ProviderConfig) -> Any:
    from oracle.chain.client import MarketClient
    from oracle.keys import load_keystore
    from oracle.provider.daemon import ProviderDaemon
    from oracle.provider.runtime import DockerRuntime

    runtime = DockerRuntime(config.docker, chain_id=config.chain_id, market=config.market_address)
    provider_key = load_keystore(config.keystore_path, config.password("provider"), dev=config.dev)
    agent_key = load_keystore(config.agent_keystore_path, config.password("agent"), dev=config.dev)
    client = MarketClient.from_private_key(config.rpc_url, provider_key, config.market_address)
    if client.chain_id != config.chain_id:
        from oracle.errors import ConfigError

        raise ConfigError(f"the RPC serves chain {client.chain_id}, the config says {config.chain_id}")
    nvml = None
    if config.telemetry.source == "nvml":
        import pynvml

        pynvml.nvmlInit()
        nvml = pynvml
    return ProviderDaemon(config, client=client, agent_key=agent_key, runtime=runtime, nvml=nvml)


def serve(config: ProviderConfig) -> int:
    import uvicorn

    from oracle.provider.api import create_app

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("httpx").setLevel(logging.WARNING)
    daemon = build_daemon(config)
    adopted = daemon.adopt()
    server = uvicorn.Server(uvicorn.Config(create_app(daemon), host=config.listen_host, port=config.listen_port,
                                           log_level="warning", access_log=False))
    server.install_signal_handlers = lambda: None  # this function owns the signals
    http = threading.Thread(target=server.run, name="provider-http", daemon=True)
    http.start()
    print(f"gpurent provider daemon {daemon.provider} on {config.url} (chain {config.chain_id}, market "
          f"{config.market_address}); GPUs {', '.join(g.uuid for g in config.gpus)}; "
          f"{'GPU runtime: nvidia' if daemon.runtime.gpus_enabled else 'DEV MODE: CPU-only containers, no GPUs'}; "
          f"re-adopted {len(adopted)} container(s)", file=sys.stderr, flush=True)

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("received %s; stopping (containers keep running)", signal.Signals(signum).name)
        daemon.stop_event.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
    try:
        daemon.run()
    finally:
        server.should_exit = True
        daemon.shutdown()
        http.join(timeout=5)
    return 0
