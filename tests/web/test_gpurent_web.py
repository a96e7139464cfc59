"""``gpurent web`` as a user starts it: a process serving the API and pages against the
configured RPC and deployment, following the chain on its own, with real nodes' health."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from oracle.chain.anvil import ANVIL_KEYS, free_port
from oracle.chain.client import OfferTerms
from oracle.deployment import save_deployment
from oracle.node.testing import NodeProcess
from tests.oracle.integration.conftest import node_env

from .conftest import PROVIDER

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def wait_for(fn, timeout_s: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{what} did not hold within {timeout_s} s (last: {last!r})")


def test_gpurent_web_serves_the_market_it_follows_and_the_nodes_health(deployed, tmp_path):
    deployments = save_deployment(deployed.deployment, tmp_path / "deployments.json")
    dead = f"http://127.0.0.1:{free_port()}"
    port = free_port()
    with NodeProcess(node_env(deployed, 0, tmp_path / "node.sqlite3")) as node:
        env = {**os.environ, "GPURENT_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "oracle.cli.main", "web", "--port", str(port), "--rpc", deployed.chain.url,
             "--deployment", str(deployments), "--node", node.url, "--node", dead],
            env=env, cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            meta = wait_for(lambda: httpx.get(base + "/api/v1/meta", timeout=5).json(), what="gpurent web answering")
            assert meta["chain_id"] == deployed.chain.chain_id and meta["market"] == deployed.market
            provider = deployed.client(PROVIDER)
            provider.stake(deployed.token, provider.min_stake_per_gpu(deployed.token))
            offer_id, _ = provider.create_offer(OfferTerms(
                gpu_model="NVIDIA L40S", gpu_count=1, payment_token=deployed.token, price_per_gpu_hour=900_000,
                price_per_kwh=0, region="eu-west-1", grid_intensity_g_per_kwh=120, max_duration_seconds=7_200,
                min_uptime_bps=9_000, agent=Account.from_key(ANVIL_KEYS[4]).address))
            offers = wait_for(lambda: httpx.get(base + "/api/v1/offers", params={"gpu_model": "NVIDIA L40S"},
                                                timeout=5).json()["items"], what="the new offer indexed")
            assert [o["offer_id"] for o in offers] == [offer_id]
            assert offers[0]["memory_mib"] == int(provider.get_offer(offer_id)["memoryMib"])
            network = httpx.get(base + "/api/v1/network", timeout=10).json()
            by_url = {n["url"]: n for n in network["nodes"]}
            assert by_url[node.url]["ok"] is True
            assert by_url[node.url]["signer"] == Account.from_key(deployed.node_keys[0]).address
            assert by_url[node.url]["in_signer_set"] is True
            assert by_url[dead]["ok"] is False and by_url[dead]["error"]
            resp = httpx.get(base + "/api/v1/offers", params={"sort": "nope"}, timeout=5)
            assert resp.status_code == 400 and resp.json()["field"] == "sort"
            assert "app;dur=" in resp.headers["server-timing"]
        finally:
            proc.terminate()
            out, _ = proc.communicate(timeout=20)
    assert f"http://127.0.0.1:{port}/" in out.decode()
