"""Starting the demo's oracle nodes and its telemetry agent as real subprocesses
(``gpurent oracle run`` / ``gpurent agent run``), each from a config file in the state directory."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oracle.demo.base import DemoOptions
from oracle.demo.procs import DemoKeys, _cli_env, _free_port, _Processes, _wait_http
from oracle.demo.watch import _get_json, _wait_nodes


@dataclass
class Nodes:
    urls: list[str]
    procs: list[subprocess.Popen]
    logs: list[Path]


def start_nodes(deployment: dict[str, Any], keys: DemoKeys, options: DemoOptions, state: Path, rpc: str,
                procs: _Processes, *, confirmations: int) -> Nodes:
    """One ``gpurent oracle run`` per node key: each follows the chain from the deployment block,
    meters what the agent sends, and settles by itself every ``settle_interval_s``."""
    env = _cli_env(state)
    ports = [_free_port() for _ in keys.node_keystores]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    logs = [state / f"node-{i + 1}.log" for i in range(len(ports))]
    first = len(procs.nodes)
    for i, (keystore, port_i) in enumerate(zip(keys.node_keystores, ports)):
        config = {
            "keystore_path": str(keystore),
            "keystore_password_file": str(keys.password_file),
            "chain_id": deployment["chain_id"],
            "market_address": deployment["market"],
            "signer_set_version": deployment["signer_set"]["version"],
            "db_path": str(state / f"node-{i + 1}.sqlite3"),
            "host": "127.0.0.1", "port": port_i,
            "peers": [u for j, u in enumerate(urls) if j != i],
            "rpc_url": rpc,
            "self_url": urls[i],
            "chain_start_block": deployment["block_number"],
            "confirmations": confirmations,
            "chain_poll_interval_s": 0.25,
            "settle_interval_s": options.settle_interval_s,
            "submit_stagger_s": options.submit_stagger_s,
            # settle every round (the interval rule fires at once): the demo shows payments as they
            # accrue; a real node settles when the gas is worth it (settle_max_gas_bps)
            "settle_max_interval_s": max(1, int(options.settle_interval_s)),
            "log_level": "info",
        }
        if options.challenges:  # dev-size challenges, deadlines on the (set back) chain's clock
            config.update({"challenges": "dev", "challenge_clock": "chain", "challenge_check_telemetry": False,
                           "challenge_quorum": options.threshold, "challenge_poll_interval_s": 0.25})
        config_path = state / f"node-{i + 1}.config.json"
        config_path.write_text(json.dumps(config, indent=2))
        procs.nodes.append(subprocess.Popen(
            [sys.executable, "-m", "oracle.cli.main", "oracle", "run", "--config", str(config_path)],
            env=env, cwd=str(state), stdout=open(logs[i], "ab"), stderr=subprocess.STDOUT,
            start_new_session=True))
    node_procs = procs.nodes[first:]
    for url, proc, log in zip(urls, node_procs, logs):
        _wait_http(url + "/healthz", proc, log)
    _wait_nodes(urls, node_procs, logs, "follow the chain", 30.0,
                lambda url: _get_json(url + "/healthz").get("chain", {}).get("state") == "following")
    return Nodes(urls, node_procs, logs)


def start_web(rpc: str, deployments: Path, node_urls: list[str], state: Path, procs: _Processes) -> str:
    """``gpurent web`` on this chain beside the nodes (issue 12): its URL, once it answers."""
    from oracle.web.server import web_command

    port = _free_port()
    log = state / "web.log"
    procs.nodes.append(subprocess.Popen(web_command(rpc, port, node_urls, deployments), env=_cli_env(state),
                                        cwd=str(state), stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                                        start_new_session=True))
    url = f"http://127.0.0.1:{port}/"
    _wait_http(url + "healthz", procs.nodes[-1], log)
    return url


def start_end_answer(state: Path, procs: _Processes) -> Path:
    """``gpurent agent answer`` with the agent's config, once the rental ended: the demo's agent
    replayed a finite trace and exited, so this answers the rental's end challenge."""
    answer_log = state / "agent-answer.log"
    procs.agent = subprocess.Popen(
        [sys.executable, "-m", "oracle.cli.main", "agent", "answer", "--config", str(state / "agent.config.json"),
         "-v"], env=_cli_env(state), cwd=str(state), stdout=open(answer_log, "ab"), stderr=subprocess.STDOUT,
        start_new_session=True)
    return answer_log


def start_agent(deployment: dict[str, Any], keys: DemoKeys, options: DemoOptions, state: Path, rental_id: int,
                node_urls: list[str], started_at: int, *, use_nvml: bool, procs: _Processes) -> Path:
    """``gpurent agent run`` for the rental: NVML GPU 0, or the trace replayed from the rental's start."""
    agent_config = {
        "rental_id": rental_id, "chain_id": int(deployment["chain_id"]), "market": deployment["market"],
        "nodes": node_urls, "keystore_path": str(keys.agent_keystore),
        "keystore_password_file": str(keys.password_file),
        "spool_path": str(state / f"agent-spool-rental-{rental_id}.sqlite3"),
        "sample_hz": 1.0 if use_nvml else 4.0, "batch_samples": 10,
        "source": ({"kind": "nvml", "indices": [0]} if use_nvml else  # the rental is for one GPU
                   {"kind": "replay", "trace": str(options.trace), "speed": options.speed, "period_ms": 1000,
                    "not_before_ms": started_at * 1000}),
    }
    if options.challenges:
        agent_config.update({"challenges": "numpy", "challenge_poll_s": 0.25})
        if options.cheat:
            agent_config.update({"challenge_cheat": True, "dev": True})
    agent_config_path = state / "agent.config.json"
    agent_config_path.write_text(json.dumps(agent_config, indent=2))
    agent_log = state / "agent.log"
    procs.agent = subprocess.Popen(
        [sys.executable, "-m", "oracle.cli.main", "agent", "run", "--config", str(agent_config_path), "-v"],
        env=_cli_env(state), cwd=str(state), stdout=open(agent_log, "ab"), stderr=subprocess.STDOUT,
        start_new_session=True)
    return agent_log
