"""What `make demo` runs (shortened: the trace replayed at 20x), checked against the chain: the
nodes learn the rental from chain events and send every settlement themselves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, TRACE, ChainReader
from e2e_checks import check_rental_against_chain

from oracle.demo import DemoError, DemoOptions, _wait_nodes, render_summary, run_demo
from oracle.demo.base import speed_to_count_the_start_challenge
from oracle.provider.devdocker import choose_docker, static_busybox

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRACE_SECONDS = 110  # h100_trace_train.csv, sampled at 1 Hz by the agent


def test_demo_rental_pays_provider_exactly_what_settled_and_refunds_the_rest(tmp_path: Path) -> None:
    # the speed `gpurent demo` picks: the replay lasts until the start challenge is due
    options = DemoOptions(state_dir=tmp_path / "demo", trace=TRACE, speed=speed_to_count_the_start_challenge(TRACE, 20.0),
                          settle_interval_s=1.5, fast_kdf=True, keep_running=True)
    result = run_demo(options)
    try:
        summary = result.summary
        reader = ChainReader(result.rpc_url, summary["market"], json.loads(result.deployments.read_text())
                             ["deployments"][str(summary["chain_id"])]["payment_token"])
        check_rental_against_chain(reader, summary, TRACE_SECONDS)
        # The table a person sees renders from the same numbers.
        from rich.console import Console

        console = Console(record=True, width=240)
        console.print(render_summary(result))
        text = console.export_text()
        assert f"{summary['paid_to_provider'] / 1e6:.6f} tUSD" in text
        assert f"{summary['refunded_to_renter'] / 1e6:.6f} tUSD" in text
        assert summary["settle_txs"][-1] in text
        assert summary["settled_by"] and set(summary["settled_by"]) <= {"node-1", "node-2", "node-3"}
        assert f"{summary['settlements'][-1]['node']} {summary['settlements'][-1]['submitter'][:6]}" in text
        # proof of GPU at the dev size: the start challenge, answered by the agent, passed by the quorum
        assert summary["challenges"]["passed"] >= 1 and summary["challenges"]["failed"] == 0, summary["challenges"]
        assert f"{summary['challenges']['passed']} passed, 0 failed" in text
        # issue 10: the renter's command ran in a container through the provider daemon (or, with no
        # Docker here, one line said why and nothing ran)
        container = summary["container"]
        if container.get("skipped"):
            assert choose_docker().unavailable or static_busybox() is None
            assert f"not run: {container['skipped']}" in text
        else:
            assert container["output"][0].startswith(f"renter job running in rental-{summary['rental_id']},")
            assert "step 3: ok" in container["output"]
            assert container["exec"]["exit_code"] == 0
            assert container["exec"]["output"].startswith(f"shell: root@rental-{summary['rental_id']}")
            assert container["container_removed"] is True
            assert 0 < container["first_output_s"] <= container["exec_s"] < 60
            assert container["output"][0] in text and "rent open -> first output / shell" in text
        # issue 8: `market list` shows the provider's challenge record, as the chain keeps it
        offer, table, (passed, failed) = market_list_challenges(result, summary["provider"])
        assert (offer["challenges_passed"], offer["challenges_failed"]) == (passed, failed)
        # the chain counts the start challenge: in the last settled report and the provider's record
        assert summary["challenges_in_report"] == {"passed": summary["challenges"]["passed"], "failed": 0}
        assert "challenges counted in the settled reports" in text
        assert passed == summary["challenges"]["passed"] and failed == 0 and f"{passed} ok / 0 failed" in table
    finally:
        assert result.cleanup is not None
        result.cleanup()


def test_demo_command_exits_zero_and_prints_json_summary(tmp_path: Path) -> None:
    """`gpurent demo --json` as a subprocess, with one oracle node stopped mid-rental: the other
    two still reach the threshold and the rental settles and refunds."""
    out = subprocess.run(
        [sys.executable, "-m", "oracle.cli.main", "demo", "--json", "--speed", "20", "--stop-node-after", "40",
         "--state-dir", str(tmp_path / "demo"), "--trace", str(TRACE)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads(out.stdout)
    summary = data["summary"]
    assert summary["status"] == "Finalized"
    assert summary["stopped_node"] is not None
    assert summary["settled_reports"] >= 1 and all(entry["node"] for entry in summary["settlements"])
    assert summary["paid_to_provider"] + summary["protocol_fee"] + summary["refunded_to_renter"] == summary["budget"]
    assert summary["provider_completed_rentals"] == 1
    assert data["wall_s"] < 180


def test_demo_meters_a_gpu_through_nvml_when_the_host_has_one(tmp_path: Path) -> None:
    """The NVML path of the demo (a GPU host), on a stand-in pynvml: two GPUs on the host, the
    rental takes GPU 0, metered live for 12 s."""
    import os

    fake = Path(__file__).parent / "fake_nvml"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-m", "oracle.cli.main", "demo", "--json", "--nvml-seconds", "12",
         "--state-dir", str(tmp_path / "demo")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)["summary"]
    assert summary["telemetry_source"] == "nvml" and summary["status"] == "Finalized"
    assert 8 <= summary["available_gpu_seconds"] <= 16
    # 300 W for the attested seconds, within a second of sampling either way
    assert abs(summary["energy_millijoules"] - 300_000 * summary["available_gpu_seconds"]) <= 300_000 * 2
    assert summary["paid_to_provider"] > 0 and summary["provider_completed_rentals"] == 1


def test_demo_waits_name_the_node_log_to_read(tmp_path: Path) -> None:
    """A node that exits, or one that never gets ready, is reported with its log file."""
    logs = [tmp_path / "node-1.log", tmp_path / "node-2.log"]
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    dead.wait()
    try:
        with pytest.raises(DemoError, match=r"exited with 3; see .*node-2\.log"):
            _wait_nodes(["http://a", "http://b"], [alive, dead], logs, "follow the chain", 5, lambda url: False)
        with pytest.raises(DemoError, match=r"http://a did not follow the chain within 1 s; see .*node-1\.log"):
            _wait_nodes(["http://a"], [alive], logs[:1], "follow the chain", 1, lambda url: False)
    finally:
        alive.kill()
        alive.wait()


def test_demo_cheat_leaves_the_period_unpaid_and_shows_the_slash_on_chain(tmp_path: Path) -> None:
    """Issue 8: `gpurent demo --cheat` (the agent answers every challenge wrongly) shows the period
    unpaid AND the CHALLENGE_FAILED fault slashed on chain by the nodes, with its kind and amount,
    each read back from the chain here independently of the demo."""
    from oracle.traces import TRACE_A

    options = DemoOptions(state_dir=tmp_path / "demo", trace=TRACE_A, speed=1.0, settle_interval_s=1.5,
                          fast_kdf=True, keep_running=True, cheat=True, container=False)
    result = run_demo(options)
    try:
        summary = result.summary
        assert summary["challenges"]["failed"] >= 1 and summary["challenges"]["passed"] == 0
        assert summary["challenges"]["unpaid"], "the failed challenge leaves the period unpaid"
        assert summary["available_gpu_seconds"] < 85  # the 85-s trace is not paid in full
        reader = ChainReader(result.rpc_url, summary["market"], json.loads(result.deployments.read_text())
                             ["deployments"][str(summary["chain_id"])]["payment_token"])
        slashed = reader.events("Slashed", rentalId=summary["rental_id"])
        assert [int(ev.args["kind"]) for ev in slashed] == [5]  # CHALLENGE_FAILED, once per window
        assert summary["slashes"] == [{**summary["slashes"][0], "kind": 5, "kind_name": "CHALLENGE_FAILED",
                                       "amount": int(slashed[0].args["amount"])}]
        assert summary["slashes"][0]["amount"] > 0 and summary["slashes"][0]["sender"] in summary["node_names"]
        paid_out = reader.events("SlashPaidOut", rentalId=summary["rental_id"])
        assert summary["slash_payout"]["renter_share"] == int(paid_out[0].args["renterShare"])
        from rich.console import Console

        console = Console(record=True, width=160)
        console.print(render_summary(result))
        text = console.export_text()
        assert "slashed: fault 0 (CHALLENGE_FAILED, kind 5)" in text
        assert f"{summary['slashes'][0]['amount'] / 1e6:.6f} tUSD of stake" in text
        assert "0 passed, " in text and "GPU-s unpaid" in text
        offer, table, (passed, failed) = market_list_challenges(result, summary["provider"])
        assert (offer["challenges_passed"], offer["challenges_failed"]) == (passed, failed)
        assert failed >= 1 and passed == 0 and f"0 ok / {failed} failed" in table
    finally:
        assert result.cleanup is not None
        result.cleanup()


def market_list_challenges(result, provider: str) -> tuple[dict, str, tuple[int, int]]:
    """`gpurent market list` (JSON and table) against the demo's chain, and the provider's challenge
    record read from the chain (reputationOf) independently of the CLI."""
    from click.testing import CliRunner

    from oracle.cli.main import main

    options = ["--all", "--rpc", result.rpc_url, "--deployments", str(result.deployments)]
    listed = CliRunner().invoke(main, ["market", "list", "--json", *options], catch_exceptions=False)
    assert listed.exit_code == 0, listed.output
    table = CliRunner().invoke(main, ["market", "list", *options], catch_exceptions=False, env={"COLUMNS": "240"})
    summary = result.summary
    reader = ChainReader(result.rpc_url, summary["market"], json.loads(result.deployments.read_text())
                         ["deployments"][str(summary["chain_id"])]["payment_token"])
    fn = reader.market.functions.reputationOf(provider)
    names = [c["name"] for c in fn.abi["outputs"][0]["components"]]
    record = dict(zip(names, fn.call()))
    [offer] = [o for o in json.loads(listed.output)["offers"] if o["provider"] == provider]
    return offer, table.output, (record["challengesPassed"], record["challengesFailed"])
