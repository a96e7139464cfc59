"""Fixtures of the web API tests: a real anvil with the market deployed (the integration
tests' deployment), the real indexer (EventFollower -> SQLite) and the FastAPI app.

``WebHarness.sync()`` runs the followers once (confirmations 0), so each test decides when the
index catches up; ``client`` is a TestClient of the real app over that index.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from oracle.attestation.eip712 import UsageReport
from oracle.chain.anvil import Anvil
from oracle.chain.contract import connect
from oracle.deployment import Deployment
from oracle.web.app import create_app
from oracle.web.indexer import ChainIndexer, IndexTarget
from oracle.web.server import config_from_deployment
from oracle.web.state import WebState
from oracle.web.store import IndexStore
from tests.oracle.integration.conftest import (  # noqa: F401  (re-exported for the web tests)
    NODE_KEYS, PROVIDER, RENTER, SUBMITTER, DeployedMarket, deploy,
)

__all__ = ["NODE_KEYS", "PROVIDER", "RENTER", "SUBMITTER", "DeployedMarket", "deploy"]


def pytest_collection_modifyitems(items):
    if shutil.which("anvil") is None:
        skip = pytest.mark.skip(reason="anvil not on PATH (export PATH=$PWD/node_modules/.bin:$PATH)")
        for item in items:
            if "tests/web" in str(item.fspath) and "anvil" in item.fixturenames:
                item.add_marker(skip)


@dataclass
class WebHarness:
    deployed: DeployedMarket
    store: IndexStore
    indexer: ChainIndexer
    state: WebState
    client: TestClient

    def sync(self) -> int:
        return self.indexer.poll_once()

    def get(self, path: str, **params) -> dict:
        resp = self.client.get(path, params=params)
        assert resp.status_code == 200, resp.text
        return resp.json()


def make_harness(deployed: DeployedMarket, data_dir: Path, nodes: list[str] | None = None) -> WebHarness:
    deployment: Deployment = deployed.deployment  # type: ignore[assignment]
    config = config_from_deployment(deployment, nodes)
    w3 = connect(deployed.chain.url)
    store = IndexStore(data_dir / "web-index.sqlite")
    indexer = ChainIndexer(w3, IndexTarget(config.chain_id, config.market, config.start_block, config.timelock,
                                           config.operator_registry), store, confirmations=0)
    state = WebState(config, store, w3=w3, indexer=indexer)
    return WebHarness(deployed, store, indexer, state, TestClient(create_app(state)))


@pytest.fixture(scope="module")
def anvil():
    with Anvil() as chain:
        yield chain


@pytest.fixture(scope="module")
def deployed(anvil) -> DeployedMarket:
    return deploy(anvil)


@pytest.fixture
def web(deployed, tmp_path) -> WebHarness:
    harness = make_harness(deployed, tmp_path)
    yield harness
    harness.indexer.stop()
    harness.store.close()


def signed_report(deployed: DeployedMarket, rental_id: int, sequence: int, period_end: int, *, available: int,
                  busy: int, energy_mj: int, carbon_mg: int, uptime_bps: int = 10_000, passed: int = 0,
                  failed: int = 0) -> tuple[UsageReport, list[bytes]]:
    """A usage report signed by the first two node keys (threshold 2), as nodes would sign it."""
    from oracle.attestation.eip712 import usage_report_digest
    from oracle.attestation.signing import sign_digest

    report = UsageReport(rental_id=rental_id, sequence=sequence, period_end=period_end,
                         available_gpu_seconds=available, busy_gpu_seconds=busy, energy_millijoules=energy_mj,
                         carbon_milligrams=carbon_mg, uptime_bps=uptime_bps, fault_flags=0,
                         challenges_passed=passed, challenges_failed=failed,
                         telemetry_hash=bytes([sequence]) * 32, signer_set_version=1)
    digest = usage_report_digest(report, deployed.chain.chain_id, deployed.market)
    return report, [sign_digest(k, digest) for k in NODE_KEYS[:2]]


def node_addresses(count: int = 2) -> list[str]:
    return [Account.from_key(k).address for k in NODE_KEYS[:count]]
