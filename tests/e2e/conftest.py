"""End-to-end tests: the demo's whole rental, and testnet-style deployments, on real anvil chains
with real uvicorn nodes and the real H100 trace. Plain pytest (no Brownie plugin):

    .venv/bin/python -m pytest -p no:pytest-brownie tests/e2e
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from oracle.traces import TRACE_TRAIN

REPO_ROOT = Path(__file__).resolve().parents[2]
os.environ["PATH"] = os.pathsep.join([str(REPO_ROOT / "node_modules" / ".bin"), str(REPO_ROOT / ".venv" / "bin"),
                                      os.environ.get("PATH", "")])


TRACE = TRACE_TRAIN


@pytest.fixture(autouse=True)
def _requirements(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("anvil") is None:
        pytest.skip("anvil not installed (make setup)")
    if not TRACE.is_file():
        pytest.skip(f"telemetry trace not found: {TRACE} (set GPURENT_TRACE_DIR)")
    # Never touch the user's ~/.gpurent or deployment file.
    monkeypatch.setenv("GPURENT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GPURENT_DEPLOYMENTS", str(tmp_path / "home" / "deployments.json"))
    for name in ("GPURENT_RPC_URL", "GPURENT_KEYSTORE", "GPURENT_DEV_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)


class ChainReader:
    """Reads the market and token straight from the chain with web3 (independent of the CLI)."""

    def __init__(self, rpc_url: str, market: str, token: str) -> None:
        from web3 import Web3

        from oracle.chain.artifacts import load_abi

        self.w3 = Web3(Web3.HTTPProvider(rpc_url))
        self.market = self.w3.eth.contract(address=market, abi=load_abi("GpuRentMarket"))
        self.token = self.w3.eth.contract(address=token, abi=load_abi("TestStablecoin"))

    def rental(self, rental_id: int) -> Any:
        return self.market.functions.getRental(rental_id).call()

    def balance(self, account: str) -> int:
        return self.token.functions.balanceOf(account).call()

    def events(self, name: str, **filters: Any) -> list[Any]:
        return list(getattr(self.market.events, name).get_logs(from_block=0, argument_filters=filters or None))
