"""`gpurent agent run` by hand against a started rental (issue 11): it takes the rental's start from
the chain (no batch refused), stops by itself when the rental ends, exits non-zero when the nodes
refuse its batches, and `gpurent agent requeue` puts the refused batches back (no Python call)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from oracle.chain.anvil import free_port
from oracle.localchain import LocalChain, _rpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from provider.daemon_harness import PASSWORD, gpurent, node_keys, start_nodes, stop_all  # noqa: E402

from conftest import TRACE  # noqa: E402

pytestmark = [pytest.mark.integration]
H100 = "NVIDIA H100 80GB HBM3"


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from oracle.keys import CHEAPEST_ACCEPTED_KDF, new_keystore

    state = tmp_path_factory.mktemp("agent-by-hand")
    local = LocalChain(state / "chain")
    rpc = local.start(port=free_port(), timestamp=int(time.time()) - 600).url  # room to back-date a start
    deployments = state / "deployments.json"
    password_file = state / "password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    agent_key = state / "agent.json"
    agent = new_keystore(agent_key, PASSWORD, **CHEAPEST_ACCEPTED_KDF)
    stranger_key = state / "stranger.json"
    new_keystore(stranger_key, PASSWORD, **CHEAPEST_ACCEPTED_KDF)
    keys = node_keys(state)
    procs: list[subprocess.Popen] = []
    try:
        signers = [a for _, address in keys for a in ("--signer", address)]
        deployment = gpurent(rpc, deployments, "deploy", *signers, dev=0)
        gpurent(rpc, deployments, "provider", "stake", "1000", dev=1)
        gpurent(rpc, deployments, "provider", "offer", "create", "--gpu-model", H100, "--gpu-count", "4",
                "--price-per-gpu-hour", "2", "--region", "SE", "--agent", agent, dev=1)
        procs, nodes = start_nodes(state, rpc=rpc, deployment=deployment, keys=keys, password_file=password_file)
        yield {"rpc": rpc, "deployments": deployments, "state": state, "nodes": nodes, "agent_key": agent_key,
               "stranger_key": stranger_key, "password_file": password_file}
    finally:
        stop_all(procs)
        local.stop()


def _started_rental(m: dict[str, Any], *, backdate_s: int = 0) -> int:
    rental = gpurent(m["rpc"], m["deployments"], "rent", "open", "1", "--budget", "20", dev=2)["rental_id"]
    if backdate_s:  # as the demo does: a rental that began a while ago, so a fast replay has room
        head = int(_rpc(m["rpc"], "eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
        _rpc(m["rpc"], "evm_setNextBlockTimestamp", [max(head + 1, int(time.time()) - backdate_s)])
    started = gpurent(m["rpc"], m["deployments"], "provider", "start", str(rental), dev=1)["started_at"]
    if backdate_s:
        _rpc(m["rpc"], "evm_setNextBlockTimestamp", [max(started + 1, int(time.time()))])
        _rpc(m["rpc"], "evm_mine")
    return rental


def _agent(m: dict[str, Any], rental: int, *extra: str, key: str = "agent_key") -> subprocess.Popen:
    env = {**os.environ, "GPURENT_HOME": str(m["state"] / "home"), "GPURENT_DEPLOYMENTS": str(m["deployments"])}
    argv = [sys.executable, "-m", "oracle.cli.main", "agent", "run", "--rental", str(rental),
            "--keystore", str(m[key]), "--password-file", str(m["password_file"]),
            "--spool", str(m["state"] / f"spool-{rental}-{key}.sqlite3"), "--source", "replay", "--trace", str(TRACE),
            *[a for url in m["nodes"] for a in ("--node", url)], *extra]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_agent_run_by_hand_takes_the_start_from_chain_and_every_node_takes_every_batch(market) -> None:
    # Began 80 s ago: a replay at 50x back-dates its first sample 108 s, before the start (nodes refuse
    # such a batch, then every later one as a sequence gap), unless the agent holds the replay back
    # to the start it read from chain (then the trace's last 30 s run in real time).
    rental = _started_rental(market, backdate_s=80)
    proc = _agent(market, rental, "--rpc", market["rpc"], "--speed", "50")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    summary = [line for line in out.splitlines() if line.startswith("agent: rental") and "batches" in line][-1]
    assert "REFUSED" not in summary and "Traceback" not in out, out
    batches = int(summary.split(" samples in ")[1].split(" batches")[0])
    assert batches > 5
    for url in market["nodes"]:  # each node took every batch
        assert f"{url.split('://')[1]} {batches}" in summary, summary


def test_agent_run_by_hand_stops_when_the_rental_ends_on_chain(market) -> None:
    rental = _started_rental(market)
    proc = _agent(market, rental, "--rpc", market["rpc"], "--speed", "1")
    time.sleep(8)
    assert proc.poll() is None, proc.communicate()[0]
    gpurent(market["rpc"], market["deployments"], "rent", "end", str(rental), dev=2)
    t0 = time.monotonic()
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert time.monotonic() - t0 < 30, "the agent noticed the end within a few chain polls"
    assert "stopped: rental ended" in out and "REFUSED" not in out, out


def test_agent_run_exits_non_zero_when_the_nodes_refuse_its_batches_and_requeue_puts_them_back(market) -> None:
    rental = _started_rental(market)
    # The chain check refuses a key that is not the rental's agent before a sample is signed ...
    proc = _agent(market, rental, "--rpc", market["rpc"], key="stranger_key")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "takes telemetry from" in out and "Traceback" not in out, out
    # ... and without the chain (a config file, no --rpc) the nodes refuse every batch of it: the
    # agent stops, says so on one line and exits 1 instead of 0 with a page of errors.
    import json

    config = market["state"] / "stranger.config.json"
    config.write_text(json.dumps({
        "rental_id": rental, "chain_id": 31337, "market": json.loads(market["deployments"].read_text())
        ["deployments"]["31337"]["market"], "nodes": market["nodes"], "keystore_path": str(market["stranger_key"]),
        "keystore_password_file": str(market["password_file"]), "spool_path": str(market["state"] / "stranger.sqlite3"),
        "sample_hz": 4.0, "batch_samples": 4, "source": {"kind": "replay", "trace": str(TRACE), "speed": 1.0}}))
    env = {**os.environ, "GPURENT_HOME": str(market["state"] / "home")}
    proc = subprocess.run([sys.executable, "-m", "oracle.cli.main", "agent", "run", "--config", str(config)],
                          env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "stopped: every node refuses its batches" in out and "gpurent agent requeue --spool" in out, out
    assert "Traceback" not in out and out.count("ERROR") == 0, out
    requeue = subprocess.run([sys.executable, "-m", "oracle.cli.main", "agent", "requeue", "--spool",
                              str(market["state"] / "stranger.sqlite3"), "--json"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert requeue.returncode == 0, requeue.stderr
    counts = json.loads(requeue.stdout)["requeued"]
    assert set(counts) == set(market["nodes"]) and all(c >= 1 for c in counts.values()), counts
