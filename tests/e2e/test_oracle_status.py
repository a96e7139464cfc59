"""`gpurent oracle status` says whether a node can do its job and exits 1 when it cannot (no chain,
not in the signer set, no gas); a node warns at start when its key has no gas (issue 11)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from oracle.chain.anvil import free_port
from oracle.cli.main import main
from oracle.localchain import LocalChain, dev_address

pytestmark = [pytest.mark.integration]
PASSWORD = "node-status-password-1"


def _cli(*args: str, expect: int = 0) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == expect, result.output
    return result.output


def _node(config: Path, log: Path, url: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "oracle.cli.main", "oracle", "run", "--config", str(config)],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(log.read_text())


def test_oracle_status_fails_a_node_without_gas_outside_the_signer_set_or_without_a_chain(tmp_path: Path,
                                                                                           monkeypatch) -> None:
    from oracle.keys import CHEAPEST_ACCEPTED_KDF, new_keystore

    port = free_port()
    rpc = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("GPURENT_RPC_URL", rpc)
    local = LocalChain(tmp_path / "chain")
    local.start(port=port)
    procs: list[subprocess.Popen] = []
    try:
        _cli("deploy", "--dev-account", "0", "--signer", dev_address(7))
        keystore = tmp_path / "node.json"
        address = new_keystore(keystore, PASSWORD, **CHEAPEST_ACCEPTED_KDF)
        (tmp_path / "node.password").write_text(PASSWORD + "\n")
        (tmp_path / "node.password").chmod(0o600)
        node_port = free_port()
        url = f"http://127.0.0.1:{node_port}"
        config = tmp_path / "node.toml"
        config.write_text(_cli("oracle", "init-config", str(keystore), "--password-file",
                               str(tmp_path / "node.password"), "--port", str(node_port)))
        assert f'rpc_url = "{rpc}"' in config.read_text()
        procs.append(_node(config, tmp_path / "node.log", url))
        deadline = time.monotonic() + 30  # the chain side starts in the background
        while time.monotonic() < deadline and not httpx.get(url + "/healthz").json().get("chain", {}).get("warnings"):
            time.sleep(0.3)
        warnings = httpx.get(url + "/healthz").json()["chain"]["warnings"]
        assert any("has no gas" in w for w in warnings), warnings

        out = _cli("oracle", "status", url, "--json", expect=1)
        report = json.loads(out[:out.rindex("]") + 1])
        checks = {c["name"]: c for c in report[0]["checks"]}
        assert report[0]["ok"] is False
        assert checks["signer set"]["level"] == "fail" and "not in the on-chain signer set" in checks["signer set"]["detail"]
        assert checks["gas"]["level"] == "fail" and f"gpurent chain fund {address}" in checks["gas"]["detail"]
        assert checks["chain"]["level"] == "ok"
        assert out.strip().splitlines()[-1].startswith("Error: 1 of 1 nodes cannot do their job")

        # After the fix (gas; governance would add the key), gas is ok.
        _cli("chain", "fund", address, "--tokens", "0", "--rpc", rpc)
        fixed = json.loads(_cli("oracle", "status", url, "--json", expect=1).split("\nError")[0])
        assert {c["name"]: c["level"] for c in fixed[0]["checks"]}["gas"] == "ok"

        # A node that follows no chain (no rpc_url) cannot do its job either.
        lone_port = free_port()
        lone = tmp_path / "lone.toml"
        keep = ("keystore_path", "keystore_password_file", "chain_id", "market_address", "host")
        lone.write_text("\n".join([line for line in config.read_text().splitlines() if line.startswith(keep)]
                                  + [f"port = {lone_port}", f'db_path = "{tmp_path / "lone.sqlite3"}"']))
        procs.append(_node(lone, tmp_path / "lone.log", f"http://127.0.0.1:{lone_port}"))
        out = _cli("oracle", "status", f"http://127.0.0.1:{lone_port}", expect=1)
        assert "follows no chain" in out and "rpc_url" in out and "Traceback" not in out
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        local.stop()
