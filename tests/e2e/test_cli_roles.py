"""Every role's `gpurent` subcommands against one local anvil, and the errors a person can act on
(one line, no traceback, exit 1 for a failed operation, 2 for a wrong command or setup)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from oracle.cli.main import main
from oracle.localchain import LocalChain, dev_address

pytestmark = [pytest.mark.integration]

H100 = "NVIDIA H100 80GB HBM3"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("home")
    local = LocalChain(home / "chain")
    state = local.start(port=_free_port())
    deployments = home / "deployments.json"
    try:
        yield state.url, deployments
    finally:
        local.stop()


def run(args: list[str], *, expect: int = 0) -> Any:
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == expect, result.output
    if expect == 0 and "--json" in args:
        return json.loads(result.output)
    return result.output


def g(chain_fixture: tuple[str, Path], *args: str, dev: int | None = None, expect: int = 0, json_out: bool = True):
    url, deployments = chain_fixture
    argv = list(args) + ["--rpc", url, "--deployments", str(deployments)]
    if json_out:
        argv.append("--json")
    if dev is not None:
        argv += ["--dev-account", str(dev)]
    return run(argv, expect=expect)


def test_provider_renter_and_market_commands(chain: tuple[str, Path]) -> None:
    deployed = g(chain, "deploy", "--signer", dev_address(7), "--signer", dev_address(8), "--signer",
                 dev_address(9), dev=0)
    assert deployed["signer_set"]["threshold"] == 2  # majority by default
    agent = dev_address(6)

    g(chain, "provider", "stake", "300", dev=1)
    offer = g(chain, "provider", "offer", "create", "--gpu-model", H100, "--gpu-count", "2", "--price-per-gpu-hour", "2.5",
              "--region", "SE", "--agent", agent, dev=1)["offer"]
    assert offer["grid_intensity_g_per_kwh"] > 0 and offer["region"] == "SE"
    g(chain, "provider", "stake", "300", dev=3)
    g(chain, "provider", "offer", "create", "--gpu-model", H100, "--price-per-gpu-hour", "1.5", "--region", "PL",
      "--agent", agent, dev=3)

    listing = g(chain, "market", "list", "--sort", "price")["offers"]
    assert [o["price_per_gpu_hour_display"] for o in listing] == ["1.5 tUSD/GPU-h", "2.5 tUSD/GPU-h"]
    assert [o["price_per_gpu_hour"] for o in listing] == [1_500_000, 2_500_000]
    greener = g(chain, "market", "list", "--filter", "grid<=100", "--filter", "gpu~H100")["offers"]
    assert [o["offer_id"] for o in greener] == [offer["offer_id"]]
    table = g(chain, "market", "list", "--sort", "grid", json_out=False)
    assert "NVIDIA H100" in table and "SE" in table
    # the provider's proof-of-GPU challenge record (Reputation.challengesPassed/Failed) beside its reputation
    assert all(o["challenges_passed"] == 0 and o["challenges_failed"] == 0 for o in listing)
    assert "0 ok / 0 failed" in table and "1.5 tUSD" in table

    updated = g(chain, "provider", "offer", "update", str(offer["offer_id"]), "--price-per-gpu-hour", "2.0",
                dev=1)["offer"]
    assert updated["version"] == offer["version"] + 1 and updated["price_per_gpu_hour"] == 2_000_000

    opened = g(chain, "rent", "open", str(offer["offer_id"]), "--budget", "10", "--gpus", "2", dev=2)
    rental = opened["rental_id"]
    assert opened["budget"] == 10_000_000 and opened["budget_display"] == "10 tUSD"
    assert "UTC (in " in opened["start_deadline_display"]
    # the renter's list and the provider's pending rentals, with the deadline to start as a date
    mine = g(chain, "rent", "list", dev=2)["rentals"]
    assert [r["rental_id"] for r in mine] == [rental] and mine[0]["status"] == "Open"
    pending = g(chain, "provider", "rentals", "--pending", dev=1)["rentals"]
    assert [r["rental_id"] for r in pending] == [rental] and "UTC (in " in pending[0]["start_deadline_display"]
    assert pending[0]["budget_display"] == "10 tUSD"
    assert "start by" in g(chain, "provider", "rentals", "--pending", dev=1, json_out=False)
    topped = g(chain, "rent", "top-up", str(rental), "5", dev=2)
    assert topped["budget"] == 15_000_000 and topped["budget_display"] == "15 tUSD"
    g(chain, "provider", "start", str(rental), dev=1)
    status = g(chain, "rent", "status", str(rental))
    assert status["status"] == "Active" and status["remaining"] == 15_000_000 and status["settled_usage"] is None
    g(chain, "rent", "end", str(rental), dev=2)
    # Finalization waits the rental's settlement grace (faults could still slash it until then).
    early = g(chain, "provider", "finalize", str(rental), dev=1, expect=1, json_out=False)
    assert "RentalEscrow_TooEarly" in early or "too early" in early.lower() or "grace" in early.lower(), early
    from oracle.localchain import _rpc

    _rpc(chain[0], "evm_increaseTime", [status["terms"]["settlement_grace_s"] + 1])
    _rpc(chain[0], "evm_mine", [])
    finalized = g(chain, "provider", "finalize", str(rental), dev=1)
    assert finalized["refund"] == 15_000_000 and finalized["refund_display"] == "15 tUSD"
    withdrawn = g(chain, "rent", "withdraw", dev=2)
    assert withdrawn["amount"] == 15_000_000 and withdrawn["amount_display"] == "15 tUSD"

    # An open rental the renter cancels gets everything back.
    second = g(chain, "rent", "open", str(offer["offer_id"]), "--budget", "1", dev=2)["rental_id"]
    assert g(chain, "rent", "end", str(second), dev=2)["refund"] == 1_000_000

    # Unstaking what the listed GPUs need says to withdraw an offer first, not to add stake.
    out = g(chain, "provider", "unstake", "300", dev=1, expect=1, json_out=False)
    assert "withdraw an offer first" in out and "add stake" not in out and "300 tUSD" not in out.split(":")[0], out
    g(chain, "provider", "offer", "withdraw", str(offer["offer_id"]), dev=1)
    assert g(chain, "provider", "unstake", "300", dev=1)["unbonding"] == 300_000_000
    mine = g(chain, "provider", "status", dev=1)
    assert mine["stake"]["unbonding"] == 300_000_000 and mine["offers"][0]["active"] is False
    assert mine["stake"]["unbonding_display"] == "300 tUSD" and "UTC (in " in mine["stake"]["unbonding_release_at_display"]
    assert mine["withdrawable_display"].endswith(" tUSD")
    text = g(chain, "provider", "status", dev_address(1), json_out=False)
    assert "active stake" in text and "reputation score" in text

    # Governance rotates the signer set; a stranger may not.
    readable = g(chain, "governance", "show", json_out=False)
    assert "1 %" in readable and "1 h (3600 s)" in readable and "minimum stake per listed GPU: 100 tUSD" in readable
    shown = g(chain, "governance", "show")
    assert shown["signer_set"]["version"] == 1 and shown["signer_set"]["threshold"] == 2
    # Through the timelock: the deployer (the local proposer) schedules; executing waits the delay.
    assert shown["timelock"] and shown["timelock_delay_s"] == 60
    args = ("governance", "set-signers", "--signer", dev_address(8), "--signer", dev_address(9))
    # `gpurent deploy` links the OperatorRegistry by default: a new signer must be bonded first.
    for operator in (8, 9):
        g(chain, "oracle", "bond", "1000", dev=operator)
    scheduled = g(chain, *args, dev=0)
    assert scheduled["state"] == "waiting" and scheduled["via"] == "timelock"
    assert "not ready" in g(chain, *args, "--execute", dev=0, expect=1, json_out=False)
    rotated = g(chain, *args, "--warp", dev=0)
    assert rotated["version"] == 2 and rotated["threshold"] == 2 and rotated["state"] == "done"
    out = g(chain, "governance", "set-signers", "--signer", dev_address(8), dev=5, expect=1, json_out=False)
    assert "lacks the role" in out

    # Errors a person can act on.
    out = g(chain, "provider", "unstake", "--complete", dev=1, expect=1, json_out=False)
    assert "nothing unbonded yet" in out and "Traceback" not in out
    out = g(chain, "rent", "open", "999", "--budget", "1", dev=2, expect=1, json_out=False)
    assert "there is no offer 999" in out
    out = g(chain, "rent", "open", "2", "--budget", "1", "--no-approve", dev=4, expect=1, json_out=False)
    assert "allowance too low" in out and out.count("\n") == 1
    out = g(chain, "provider", "offer", "create", "--gpu-model", H100, "--price-per-gpu-hour", "1", "--agent", agent,
            dev=5, expect=1, json_out=False)
    assert "has no stake yet" in out and "gpurent provider stake" in out and "need 0" not in out
    out = g(chain, "provider", "offer", "create", "--gpu-model", H100, "--price-per-gpu-hour", "1", "--agent",
            "0x1234", dev=1, expect=2, json_out=False)
    assert "not a 20-byte hex address" in out
    out = g(chain, "rent", "status", "1", "--budget", "1", expect=2, json_out=False)  # unknown option
    out = g(chain, "provider", "stake", "1", expect=2, json_out=False)
    assert "--keystore" in out and "--dev-account" in out


def test_errors_without_a_chain_or_a_deployment(tmp_path: Path, chain: tuple[str, Path]) -> None:
    dead = f"http://127.0.0.1:{_free_port()}"
    t0 = time.monotonic()
    out = run(["market", "list", "--rpc", dead], expect=1)
    assert time.monotonic() - t0 < 15
    assert out.startswith("Error: cannot reach the RPC") and "Traceback" not in out and out.count("\n") == 1

    url, _ = chain
    out = run(["market", "list", "--rpc", url, "--deployments", str(tmp_path / "none.json")], expect=2)
    assert "no gpurent deployment for chain 31337" in out and "gpurent deploy" in out

    keystore = tmp_path / "k.json"
    created = json.loads(CliRunner().invoke(main, ["oracle", "keys", "new", str(keystore), "--fast-kdf", "--json"],
                                            env={"GPURENT_PASSWORD": "a-long-enough-password"}).output)
    assert run(["oracle", "keys", "show", str(keystore)]).strip() == created["address"]
    result = CliRunner().invoke(main, ["provider", "stake", "1", "--rpc", url, "--deployments", str(chain[1]),
                                       "--keystore", str(keystore)], env={"GPURENT_PASSWORD": "wrong-password-here"})
    assert result.exit_code == 2 and "wrong password" in result.output
    refused = CliRunner().invoke(main, ["oracle", "keys", "new", str(tmp_path / "weak.json")],
                                 env={"GPURENT_PASSWORD": "password"})
    assert refused.exit_code == 2 and "default keystore password" in refused.output


def test_status_watch_redraws_with_the_chain_until_ctrl_c(chain: tuple[str, Path]) -> None:
    """`--watch SECONDS` redraws the status as the chain changes, and Ctrl-C ends it cleanly
    (exit 0, no traceback)."""
    import os
    import signal
    import subprocess
    import sys
    import threading

    url, deployments = chain
    proc = subprocess.Popen(
        [sys.executable, "-m", "oracle.cli.main", "provider", "status", dev_address(1), "--watch", "0.5", "--json",
         "--rpc", url, "--deployments", str(deployments)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()

    def renders() -> list[dict[str, Any]]:
        text, found, decoder = "".join(out).strip(), [], json.JSONDecoder()
        while text:
            try:
                obj, end = decoder.raw_decode(text)
            except ValueError:  # a render still being written
                break
            found.append(obj)
            text = text[end:].lstrip()
        return found

    def wait_for(check: Any, what: str) -> list[dict[str, Any]]:
        until = time.monotonic() + 60
        while time.monotonic() < until:
            shown = renders()
            if check(shown):
                return shown
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
        raise AssertionError(f"--watch did not {what}: {len(renders())} renders")

    try:
        before = wait_for(lambda r: len(r) >= 2, "redraw")[-1]["stake"]["active"]
        g(chain, "provider", "stake", "7", dev=1)
        wait_for(lambda r: r[-1]["stake"]["active"] == before + 7_000_000, "show the new stake")
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=20)
        reader.join(timeout=5)
    err = proc.stderr.read()
    assert code == 0 and "Traceback" not in err, err
    assert "refreshed" in err and "until Ctrl-C" in err
