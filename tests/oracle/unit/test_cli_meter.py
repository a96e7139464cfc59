"""``gpurent meter``: the command line over the metering core."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from oracle.cli.main import main

REPO_ROOT = Path(__file__).resolve().parents[3]
REQUIRED = ("energy_joules", "available_gpu_seconds", "busy_gpu_seconds", "carbon_grams",
            "faults")


def run(*args: str):
    return CliRunner().invoke(main, ["meter", *args])


def no_floats(value) -> bool:
    if isinstance(value, float):
        return False
    if isinstance(value, dict):
        return all(no_floats(v) for v in value.values())
    if isinstance(value, list):
        return all(no_floats(v) for v in value)
    return True


def test_meter_json_prints_one_object_with_the_required_fields(trace_a_path):
    result = run(str(trace_a_path), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert set(REQUIRED) <= set(out)
    assert out["energy_joules"] == 35_899
    assert out["available_gpu_seconds"] == 85
    assert 45 <= out["busy_gpu_seconds"] <= 55
    assert out["faults"] == []
    assert out["gpu"]["power_limit_mw"] == 700_000  # read from the JSON beside the CSV
    assert out["grid_region"] == "WORLD"
    assert out["carbon_milligrams"] == out["energy_millijoules"] * 481 // 3_600_000
    assert out["carbon_grams"] == out["carbon_milligrams"] // 1000
    assert no_floats(out)


def test_meter_json_uses_the_region_or_the_given_intensity(trace_a_path):
    pl = json.loads(run(str(trace_a_path), "--json", "--region", "pl").output)
    given = json.loads(run(str(trace_a_path), "--json", "--grid-intensity", "1000").output)
    assert pl["grid_intensity_g_per_kwh"] == 662 and pl["grid_region"] == "PL"
    assert given["carbon_grams"] == 35_899_367 * 1000 // 3_600_000 // 1000 == 9


def test_meter_json_reports_unpaid_time_not_a_fault_when_the_gap_threshold_is_below_the_sample_interval(
    trace_a_path,
):
    """Issue 7: gaps are unpaid time; a DOWNTIME fault needs a breach of the rental's SLA
    (a trace metered on its own has the default SLA: 300-s longest gap, 95 % per hour)."""
    out = json.loads(run(str(trace_a_path), "--json", "--max-gap-ms", "50").output)
    assert out["available_gpu_seconds"] == 0
    assert out["faults"] == [] and out["fault_flags"] == 0


def test_meter_prints_a_table_without_json(trace_a_path):
    result = run(str(trace_a_path))
    assert result.exit_code == 0, result.output
    assert "available GPU-seconds" in result.output and "35899" in result.output


def test_meter_needs_a_power_limit_without_a_trace_description(tmp_path, trace_a_path):
    bare = tmp_path / "bare.csv"
    shutil.copy(trace_a_path, bare)
    refused = run(str(bare), "--json")
    assert refused.exit_code == 2 and "--power-limit-mw" in refused.output
    accepted = run(str(bare), "--json", "--power-limit-mw", "700000")
    assert accepted.exit_code == 0 and json.loads(accepted.output)["energy_joules"] == 35_899


@pytest.mark.parametrize("content", [b"", b"t_unix,energy_mj\n", b"a,b\n1,2\n",
                                     b"t_unix,energy_mj\nabc,1\n", b"\xff\xfe\x00garbage"])
def test_meter_exits_2_with_one_line_for_a_bad_file(tmp_path, content):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    result = run(str(bad), "--json", "--power-limit-mw", "700000")
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert "Traceback" not in result.output


def test_meter_exits_2_for_a_missing_file(tmp_path):
    result = run(str(tmp_path / "nope.csv"), "--json")
    assert result.exit_code == 2
    assert result.output == f"Error: {tmp_path / 'nope.csv'}: no such file\n"


@pytest.mark.parametrize("args", [["--region", "ATLANTIS"], ["--region", "FR",
                                                             "--grid-intensity", "5"]])
def test_meter_exits_2_for_a_bad_grid_choice(trace_a_path, args):
    result = run(str(trace_a_path), "--json", *args)
    assert result.exit_code == 2 and result.output.startswith("Error: ")


def test_meter_runs_as_a_subprocess_and_prints_one_json_object(trace_a_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    script = Path(sys.executable).parent / "gpurent"
    command = ([str(script)] if script.exists() else [sys.executable, "-m", "oracle.cli.main"])
    done = subprocess.run([*command, "meter", str(trace_a_path), "--json"], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["available_gpu_seconds"] == 85
    missing = subprocess.run([*command, "meter", "/nonexistent/trace.csv", "--json"],
                             cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().count("\n") == 0


def test_meter_every_nth_row_meters_the_subsampled_trace(trace_a_path, trace_a_samples, h100):
    from oracle.metering import DEFAULT_POLICY, meter_samples

    out = json.loads(run(str(trace_a_path), "--json", "--every", "10", "--offset", "6").output)
    expected = meter_samples(trace_a_samples[6::10], [h100], DEFAULT_POLICY, 481)
    assert out["samples"] == len(trace_a_samples[6::10])
    assert out["energy_millijoules"] == expected.energy_millijoules
    assert out["busy_gpu_milliseconds"] == expected.busy_gpu_milliseconds
