"""Every transacting command is safe to interrupt and rerun (issue 11): each is stopped by a real
SIGINT right after its transaction is sent (``GPURENT_FAULT=interrupt-after-send:<step>``, the
fault-injection hook of oracle.actions.executor), says what was sent and how to check, and the same
command run again finds that transaction in the journal instead of sending a duplicate. Real anvil,
the real CLI in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT

from oracle.chain.anvil import Anvil
from oracle.localchain import dev_address

pytestmark = [pytest.mark.integration]

SIGNERS = [dev_address(7), dev_address(8), dev_address(9)]
AGENT = dev_address(6)
H100 = "NVIDIA H100 80GB HBM3"


class Cli:
    def __init__(self, rpc: str, home: Path) -> None:
        self.rpc, self.home = rpc, home

    def __call__(self, *args: str, dev: int | None = None, fault: str | None = None, json_out: bool = True,
                 expect: int = 0) -> Any:
        argv = [sys.executable, "-m", "oracle.cli.main", *args, "--rpc", self.rpc]
        argv += ["--json"] if json_out else []
        argv += ["--dev-account", str(dev)] if dev is not None else []
        env = {**os.environ, "GPURENT_HOME": str(self.home), "GPURENT_DEPLOYMENTS": str(self.home / "deployments.json")}
        env.pop("GPURENT_FAULT", None)
        if fault:
            env["GPURENT_FAULT"] = fault
        out = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180)
        assert out.returncode == expect, (out.returncode, out.stdout[-2000:], out.stderr[-3000:])
        if expect == 0 and json_out:
            return json.loads(out.stdout)
        return out


def _interrupted(out: subprocess.CompletedProcess) -> str:
    """An interrupt after sending: exit 130, one line naming the transaction and how to check."""
    message = out.stderr.strip()
    assert out.returncode == 130
    assert "Traceback" not in out.stderr and message.count("\n") == 0, message
    assert "interrupted after sending" in message and "gpurent tx status" in message
    assert "running the same command again picks it up" in message
    return message


def _deploy_args() -> list[str]:
    return ["deploy", *[a for s in SIGNERS for a in ("--signer", s)]]


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("home")
    with Anvil() as anvil:
        cli = Cli(anvil.url, home)
        deployed = cli(*_deploy_args(), dev=0)
        yield cli, anvil, deployed


@pytest.fixture(scope="module")
def offer_id(market) -> str:
    """An offer to rent from (dev account 9 stakes and lists it), so no test depends on another's."""
    cli, _, _ = market
    cli("provider", "stake", "500", dev=9)
    return str(cli("provider", "offer", "create", "--gpu-model", H100, "--price-per-gpu-hour", "1", "--agent", AGENT,
                   dev=9)["offer"]["offer_id"])


def _view(anvil: Anvil, deployed: dict) -> Any:
    from oracle.chain.client import MarketClient
    from oracle.chain.contract import make_sender

    return MarketClient(make_sender(anvil.url, "0x" + "11" * 32), deployed["market"])


def test_provider_stake_interrupted_after_send_is_not_sent_twice(market) -> None:
    cli, anvil, deployed = market
    message = _interrupted(cli("provider", "stake", "300", dev=1, fault="interrupt-after-send:stake", expect=130))
    status = cli("tx", "status")["transactions"]
    stake_tx = next(t for t in status if t["step"] == "stake")
    assert stake_tx["tx_hash"] in message and stake_tx["attempt_open"] and stake_tx["chain_state"] == "mined"
    again = cli("provider", "stake", "300", dev=1)
    assert again["resumed"] is True and again["tx"] == stake_tx["tx_hash"]
    assert _view(anvil, deployed).stake_of(dev_address(1))["active"] == 300_000_000  # not 600
    text = cli("tx", "status", json_out=False).stdout
    assert "interrupted" not in text  # the rerun finished the intent
    # Deliberately staking the same amount again (after a finished run) is a new intent.
    assert cli("provider", "stake", "300", dev=1).get("resumed") is None
    assert _view(anvil, deployed).stake_of(dev_address(1))["active"] == 600_000_000


def test_offer_create_interrupted_after_send_is_not_sent_twice(market) -> None:
    cli, anvil, deployed = market
    args = ("provider", "offer", "create", "--gpu-model", H100, "--price-per-gpu-hour", "2", "--region", "SE",
            "--agent", AGENT)
    before = _view(anvil, deployed).offer_count()
    _interrupted(cli(*args, dev=1, fault="interrupt-after-send:createOffer", expect=130))
    again = cli(*args, dev=1)
    assert again["resumed"] is True and again["offer"]["offer_id"] == before + 1
    assert _view(anvil, deployed).offer_count() == before + 1


def test_rent_open_interrupted_after_send_is_not_sent_twice(market, offer_id: str) -> None:
    cli, anvil, deployed = market
    before = _view(anvil, deployed).rental_count()
    _interrupted(cli("rent", "open", offer_id, "--budget", "5", dev=2, fault="interrupt-after-send:openRental",
                     expect=130))
    again = cli("rent", "open", offer_id, "--budget", "5", dev=2)
    assert again["resumed"] is True and again["rental_id"] == before + 1
    assert _view(anvil, deployed).rental_count() == before + 1


def test_rent_open_interrupted_between_recording_and_sending_sends_the_recorded_transaction(market,
                                                                                          offer_id: str) -> None:
    cli, anvil, deployed = market
    before = _view(anvil, deployed).rental_count()
    _interrupted(cli("rent", "open", offer_id, "--budget", "4", dev=3, fault="interrupt-before-send:openRental",
                     expect=130))
    recorded = next(t for t in cli("tx", "status")["transactions"] if t["step"] == "openRental"
                    and t["sender"] == dev_address(3))
    assert recorded["chain_state"] == "not on chain"
    assert _view(anvil, deployed).rental_count() == before
    again = cli("rent", "open", offer_id, "--budget", "4", dev=3)
    assert again["tx"] == recorded["tx_hash"]  # the very bytes recorded, same nonce: never two
    assert _view(anvil, deployed).rental_count() == before + 1


def test_rent_open_dropped_from_the_pool_after_an_interrupt_is_sent_again_with_the_same_nonce(market,
                                                                                              offer_id: str) -> None:
    cli, anvil, deployed = market
    renter = dev_address(4)
    approve = anvil.rpc("eth_sendTransaction", [{"from": renter, "to": deployed["payment_token"],
                                                 "data": "0x095ea7b3" + deployed["market"][2:].lower().rjust(64, "0")
                                                 + hex(10**12)[2:].rjust(64, "0")}])  # then only openRental is sent
    for _ in range(200):  # mined before the chain stops mining on its own
        if anvil.rpc("eth_getTransactionReceipt", [approve]) is not None:
            break
        time.sleep(0.05)
    before = _view(anvil, deployed).rental_count()
    anvil.set_automine(False)
    try:
        _interrupted(cli("rent", "open", offer_id, "--budget", "3", "--no-approve", dev=4,
                         fault="interrupt-after-send:openRental", expect=130))
        pending = next(t for t in cli("tx", "status")["transactions"] if t["sender"] == renter)
        assert pending["chain_state"] == "pending"
        anvil.rpc("anvil_dropTransaction", [pending["tx_hash"]])
    finally:
        anvil.set_automine(True)
    assert next(t for t in cli("tx", "status")["transactions"] if t["sender"] == renter)["chain_state"] == "not on chain"
    again = cli("rent", "open", offer_id, "--budget", "3", "--no-approve", dev=4)
    assert again["tx"] == pending["tx_hash"] and again["resumed"] is True
    assert _view(anvil, deployed).rental_count() == before + 1


def test_deploy_interrupted_resumes_where_it_stopped_without_redeploying_mined_contracts(tmp_path: Path) -> None:
    with Anvil() as anvil:
        cli = Cli(anvil.url, tmp_path / "home")
        message = _interrupted(cli(*_deploy_args(), dev=0, fault="interrupt-after-send:market", expect=130))
        assert not (tmp_path / "home" / "deployments.json").exists()
        sent = cli("tx", "status", "--limit", "1000")["transactions"]
        market_tx = next(t for t in sent if t["step"] == "market")
        assert market_tx["tx_hash"] in message
        first_run = {t["step"] for t in sent}
        assert {"stablecoin", "market"} <= first_run and "timelock" not in first_run
        market_address = anvil.rpc("eth_getTransactionReceipt", [market_tx["tx_hash"]])["contractAddress"]

        deployed = cli(*_deploy_args(), dev=0)
        assert deployed["market"].lower() == market_address.lower()  # the contract mined before, not a new one
        steps = [t["step"] for t in cli("tx", "status", "--limit", "1000")["transactions"]]
        assert len(steps) == len(set(steps))  # every step sent once over both runs
        nonce = int(anvil.rpc("eth_getTransactionCount", [dev_address(0), "latest"]), 16)
        assert nonce == len(steps)  # and the deployer sent nothing else
        assert json.loads((tmp_path / "home" / "deployments.json").read_text())["deployments"]["31337"]["market"] \
            == deployed["market"]


def test_every_other_transacting_command_resumes_after_an_interrupt(market) -> None:
    """The rest of a rental's life and of governance, each interrupted after its send and rerun:
    the rerun reports the transaction the interrupted run sent, and sends nothing new."""
    cli, anvil, deployed = market
    view = _view(anvil, deployed)

    def resumes(*args: str, dev: int, step: str) -> dict:
        nonce = int(anvil.rpc("eth_getTransactionCount", [dev_address(dev), "latest"]), 16)
        message = _interrupted(cli(*args, dev=dev, fault=f"interrupt-after-send:{step}", expect=130))
        sent = int(anvil.rpc("eth_getTransactionCount", [dev_address(dev), "latest"]), 16) - nonce
        again = cli(*args, dev=dev)
        assert again["resumed"] is True and again["tx"] in message, (args, again)
        assert int(anvil.rpc("eth_getTransactionCount", [dev_address(dev), "latest"]), 16) - nonce == sent, args
        return again

    cli("provider", "stake", "500", dev=5)
    offer = cli("provider", "offer", "create", "--gpu-model", H100, "--price-per-gpu-hour", "1", "--agent", AGENT,
                dev=5)["offer"]
    offer_id = str(offer["offer_id"])
    resumes("provider", "offer", "update", offer_id, "--price-per-gpu-hour", "1.5", dev=5, step="updateOffer")
    rental_id = str(cli("rent", "open", offer_id, "--budget", "3", dev=6)["rental_id"])
    assert resumes("rent", "top-up", rental_id, "1", dev=6, step="topUp")["budget"] == 4_000_000
    resumes("provider", "start", rental_id, dev=5, step="startRental")
    resumes("rent", "end", rental_id, dev=6, step="endRental")
    anvil.increase_time(86_400 + 1)  # past the settlement grace
    anvil.mine()
    resumes("provider", "finalize", rental_id, dev=5, step="finalizeRental")
    assert resumes("rent", "withdraw", dev=6, step="withdraw")["amount"] == 4_000_000  # nothing settled: all back
    resumes("provider", "offer", "withdraw", offer_id, dev=5, step="withdrawOffer")
    resumes("provider", "unstake", "100", dev=5, step="requestUnstake")
    assert view.stake_of(dev_address(5))["unbonding"] == 100_000_000  # once
    scheduled = resumes("governance", "set-signers", "--signer", SIGNERS[0], "--signer", SIGNERS[1], dev=0,
                        step="schedule")
    assert scheduled["state"] == "waiting"
    resumes("oracle", "bond", "1000", dev=8, step="bond")
