"""tools/gpu_check.sh, the one prepared script for an H100/H200 (issue 8 deadlines, issue 10
passthrough), dry-run on the CPU: its argument handling, the numpy path of tools/gpu_measure.py
(exactness, timings -> deadline table, false rejects under a training loop) and the settings and
attribution logic of tools/gpu_passthrough.py. The numbers mean nothing about any GPU; the GPU
steps themselves cannot run here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_gpu_check_dry_run_records_exactness_deadlines_false_rejects_and_passthrough_logic(tmp_path):
    out = tmp_path / "check"
    run = subprocess.run(["bash", str(REPO / "tools" / "gpu_check.sh"), "--dry-run", str(out)], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    env = (out / "environment.txt").read_text()
    assert "--dry-run" in env and "DRY RUN" in env
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["dry_run"] is True
    assert [row["bit_identical"] for row in report["exactness"]] == [True]
    assert set(report["solve_times"]) == {"dev", "reject-size"}
    assert all(r["ok"] for entry in report["solve_times"].values() for r in entry["runs"])
    rejects = report["false_rejects"]
    assert rejects["challenges"] == 3 and rejects["rejected"] == 0 and rejects["with_training_loop"] is True
    assert rejects["deadline_ms"] >= 4000  # margin x time + the 4 s network allowance
    table = (out / "deadline_table.md").read_text()
    assert "| size | prover ops | solve ms (median) | deadline ms |" in table and "| reject-size |" in table
    passthrough = json.loads((out / "passthrough.json").read_text())
    assert passthrough["ok"] is True and all(passthrough["settings"]["checks"].values())
    assert passthrough["attribution"]["foreign_pids"] == [200]
    assert "PASS: passthrough and attribution" in run.stdout


def test_gpu_measure_refuses_fewer_than_100_honest_challenges_on_a_gpu(tmp_path):
    run = subprocess.run([sys.executable, str(REPO / "tools" / "gpu_measure.py"), "--out", str(tmp_path),
                          "--reject-challenges", "50"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "at least 100" in run.stderr


def test_gpu_check_refuses_an_unknown_option(tmp_path):
    run = subprocess.run(["bash", str(REPO / "tools" / "gpu_check.sh"), "--fast"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "usage:" in run.stderr
