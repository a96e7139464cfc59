"""`gpurent agent run` never simulates telemetry outside an explicit dev mode (issue 11)."""

from __future__ import annotations

from click.testing import CliRunner

from oracle.cli.main import main

BASE = ["agent", "run", "--rental", "1", "--chain-id", "31337", "--market", "0x" + "42" * 20,
        "--node", "http://127.0.0.1:9", "--keystore", "missing.json"]


def test_agent_run_auto_without_a_gpu_or_a_trace_refuses_instead_of_simulating(monkeypatch):
    monkeypatch.setattr("oracle.cli.agent_cmd.nvml_gpu_count", lambda: 0)
    result = CliRunner().invoke(main, BASE + ["--source", "auto"])
    assert result.exit_code == 2, result.output
    assert "no GPU found" in result.output and "--trace" in result.output and "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0


def test_agent_run_simulated_needs_dev_mode(monkeypatch):
    result = CliRunner().invoke(main, BASE + ["--source", "simulated"])
    assert result.exit_code == 2 and "local demos only" in result.output, result.output
