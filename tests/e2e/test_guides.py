"""The role guides under docs/guides run exactly as written (issue 11): every ```sh block of every
guide, verbatim, in the order docs/guides/README.md gives, in one bash shell with `set -e`, against
a fresh local chain and a real oracle node; only the environment says where (ports, home)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from oracle.chain.anvil import free_port
from oracle.localchain import LocalChain

pytestmark = [pytest.mark.integration]

REPO_ROOT = Path(__file__).resolve().parents[2]
GUIDES = REPO_ROOT / "docs" / "guides"
ORDER = ["operator-1", "deployer-1", "operator-2", "provider-1", "renter-1", "provider-2", "renter-2",
         "provider-3", "operator-3", "deployer-2"]
BLOCK = re.compile(r"^```sh step=(?P<step>[\w-]+)\n(?P<body>.*?)^```$", re.S | re.M)


def guide_blocks() -> dict[str, tuple[str, str]]:
    """step -> (guide file, shell text), for every ```sh step=... block of the guides."""
    blocks: dict[str, tuple[str, str]] = {}
    for path in sorted(GUIDES.glob("*.md")):
        for match in BLOCK.finditer(path.read_text()):
            assert match["step"] not in blocks, f"step {match['step']} twice"
            blocks[match["step"]] = (path.name, match["body"])
    return blocks


def test_every_guide_block_is_run_and_the_readme_lists_the_order() -> None:
    blocks = guide_blocks()
    assert sorted(blocks) == sorted(ORDER), "a guide block is not in ORDER (or ORDER names a missing one)"
    assert {name for name, _ in blocks.values()} == {"deployer.md", "oracle-operator.md", "provider.md", "renter.md"}
    table = (GUIDES / "README.md").read_text()
    assert [line.split("|")[2].strip() for line in table.splitlines() if re.match(r"\| \d+ \|", line)] == \
        [f"[{'oracle operator' if s.startswith('operator') else s.split('-')[0]}]"
         f"({blocks[s][0]})" for s in ORDER]


def test_the_role_guides_run_as_written(tmp_path: Path) -> None:
    blocks = guide_blocks()
    script = ["set -euo pipefail", "PS4='+ $(date +%s) '", "set -x"]
    for step in ORDER:
        guide, body = blocks[step]
        script += [f": ==== {guide} {step} ====", body]
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    # The guides run from the top of the repository (they name oracle/data/traces/...); their files go
    # to a scratch copy of that place: the trace is linked in, nothing is written into the checkout.
    (work / "oracle" / "data").mkdir(parents=True)
    (work / "oracle" / "data" / "traces").symlink_to(REPO_ROOT / "oracle" / "data" / "traces")
    port, node_port = free_port(), free_port()
    env = {**os.environ, "GPURENT_HOME": str(home), "GPURENT_CHAIN_PORT": str(port),
           "GPURENT_RPC_URL": f"http://127.0.0.1:{port}", "NODE_PORT": str(node_port),
           "PATH": os.pathsep.join([str(REPO_ROOT / ".venv" / "bin"), str(REPO_ROOT / "node_modules" / ".bin"),
                                    os.environ.get("PATH", "")])}
    for name in ("GPURENT_DEPLOYMENTS", "GPURENT_KEYSTORE", "GPURENT_DEV_ACCOUNT", "GPURENT_PASSWORD", "GPURENT_DEBUG"):
        env.pop(name, None)
    proc = subprocess.Popen(["bash", "-c", "\n".join(script)], cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"the guides did not finish in 10 min:\n{out[-6000:]}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # a node or agent a failed block left behind
        except ProcessLookupError:
            pass
        LocalChain(home / "chain").stop()
    if os.environ.get("GPURENT_GUIDES_LOG"):
        Path(os.environ["GPURENT_GUIDES_LOG"]).write_text(out)
    assert proc.returncode == 0, f"a guide command failed (exit {proc.returncode}):\n{out[-8000:]}"
    assert "Traceback" not in out, out[-8000:]
    # What the guides promise happened: the rental ran, was metered by the node and settled.
    assert "rental 1 opened on offer 1" in out and "rental 1 started" in out, out[-4000:]
    # The agent stops when the rental is over: ended, or already finalized when its next poll of
    # the chain comes after the guide's `provider finalize` (a quiet machine gets there first).
    agent_log = (work / "agent.log").read_text()
    assert "stopped: rental ended" in agent_log or "stopped: rental finalized" in agent_log, agent_log
    assert "finalized" in out and "withdrew" in out, out[-4000:]
