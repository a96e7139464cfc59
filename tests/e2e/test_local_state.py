"""The deployment file, token amounts, and `gpurent chain start|status|stop` with its pid file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from oracle.cli.common import UsageProblem, format_amount, parse_amount
from oracle.cli.main import main
from oracle.deployment import Deployment, DeploymentError, load_deployment, save_deployment


def _deployment(chain_id: int, market: str = "0x" + "11" * 20) -> Deployment:
    return Deployment(chain_id=chain_id, market=market, payment_token="0x" + "22" * 20,
                      stake_token="0x" + "22" * 20, deployer="0x" + "33" * 20, governance="0x" + "33" * 20,
                      block_number=7, transactions={"market": "0x" + "ab" * 32})


def test_deployment_file_keeps_one_entry_per_chain_id(tmp_path: Path) -> None:
    path = tmp_path / "d" / "deployments.json"
    save_deployment(_deployment(31337), path)
    save_deployment(_deployment(11155111), path)
    save_deployment(_deployment(31337, market="0x" + "44" * 20), path)  # a redeploy replaces its chain only
    data = json.loads(path.read_text())
    assert sorted(data["deployments"]) == ["11155111", "31337"]
    assert load_deployment(31337, path).market == "0x" + "44" * 20
    assert load_deployment(11155111, path).explorer_url("0x" + "ab" * 32) == \
        "https://sepolia.etherscan.io/tx/0x" + "ab" * 32


def test_missing_deployment_says_what_to_run(tmp_path: Path) -> None:
    path = tmp_path / "deployments.json"
    save_deployment(_deployment(31337), path)
    with pytest.raises(DeploymentError, match=r"no gpurent deployment for chain 84532 .*chains there: 31337.*gpurent deploy"):
        load_deployment(84532, path)
    path.write_text("not json")
    with pytest.raises(DeploymentError, match="cannot read the deployment file"):
        load_deployment(31337, path)


def test_amounts_in_token_units() -> None:
    assert parse_amount("2.5", 6) == 2_500_000
    assert parse_amount("1_000", 6) == 1_000_000_000
    assert format_amount(2_500_000, 6, "tUSD") == "2.5 tUSD"
    for bad in ("abc", "-1", "0.0000001", "nan"):
        with pytest.raises(UsageProblem):
            parse_amount(bad, 6)


def test_chain_start_status_stop_with_pid_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    runner = CliRunner()
    started = json.loads(runner.invoke(main, ["chain", "start", "--port", str(port), "--json"]).output)
    try:
        assert started["running"] and started["chain_id"] == 31337 and len(started["dev_accounts"]) == 10
        assert (tmp_path / "home" / "chain" / "anvil.json").is_file()
        again = runner.invoke(main, ["chain", "start", "--port", str(port)])
        assert again.exit_code == 1 and "already running" in again.output
        status = json.loads(runner.invoke(main, ["chain", "status", "--json"]).output)
        assert status["running"] and status["pid"] == started["pid"] and status["block_number"] == 0
    finally:
        stopped = json.loads(runner.invoke(main, ["chain", "stop", "--json"]).output)
    assert stopped["stopped"] and stopped["pid"] == started["pid"]
    import requests

    with pytest.raises(requests.ConnectionError):  # nothing answers on the port any more
        requests.post(started["url"], json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=2)
    assert json.loads(runner.invoke(main, ["chain", "status", "--json"]).output) == {"running": False}
    assert "no local chain" in runner.invoke(main, ["chain", "stop"]).output


def test_a_local_chain_keeps_its_state_across_restarts_and_has_a_faucet_and_a_clock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from oracle.chain.anvil import free_port
    from oracle.localchain import LocalChain

    port = free_port()
    monkeypatch.setenv("GPURENT_CHAIN_PORT", str(port))
    monkeypatch.setenv("GPURENT_RPC_URL", f"http://127.0.0.1:{port}")
    runner = CliRunner()

    def g(*args: str, expect: int = 0) -> dict:
        result = runner.invoke(main, [*args, "--json"])
        assert result.exit_code == expect, result.output
        return json.loads(result.output) if expect == 0 else {"output": result.output}

    try:
        assert g("chain", "start")["resumed"] is False
        market = g("deploy", "--dev-account", "0")["market"]
        stranger = "0x000000000000000000000000000000000000dEaD"
        funded = g("chain", "fund", stranger, "--eth", "2", "--tokens", "12.5")
        assert funded["eth_wei"] == 2 * 10**18 and funded["token_balance"] == 12_500_000
        assert funded["token_balance_display"] == "12.5 tUSD"
        before = g("wallet", "balance", stranger)
        assert before["eth_display"] == "2 ETH" and before["tokens"][0]["balance_display"] == "12.5 tUSD"
        t0 = g("chain", "status")["block_number"]
        warped = g("chain", "warp", "3h20min")
        assert warped["warped_s"] == 12_000 and "(in 3 h 20 min)" in warped["chain_time_display"]
        assert g("chain", "stop")["stopped"] is True

        again = g("chain", "start")
        assert again["resumed"] is True
        assert g("chain", "status")["block_number"] > t0
        # the deployment, the balances and the clock are still there
        assert g("wallet", "balance", stranger)["tokens"][0]["balance"] == 12_500_000
        assert [m["model"] for m in g("market", "models")["models"]]
        assert g("market", "list")["market"] == market
        g("chain", "stop")
        assert g("chain", "start", "--fresh")["resumed"] is False
        assert "no contract at the market address" in g("market", "list", expect=1)["output"] or \
            "deploy" in g("market", "list", expect=1)["output"]
    finally:
        LocalChain().stop()
