"""The operators/governance page: a timelocked change shows as pending with its decoded call and
ready time (the timelock's own), then as done, and its effect (a new GPU model) is indexed."""

from __future__ import annotations

import pytest
from eth_account import Account

from oracle.chain.anvil import ANVIL_KEYS
from oracle.chain.contract import connect
from oracle.chain.governance import TimelockGovernance
from oracle.chain.tx import TransactionSender
from oracle.actions.deploy import deploy_market
from oracle.deployment import MarketParamsConfig
from tests.oracle.integration.conftest import FAST_POLICY, DeployedMarket

from .conftest import make_harness

pytestmark = pytest.mark.integration

PROPOSER = 5


@pytest.fixture(scope="module")
def governed(anvil) -> DeployedMarket:
    sender = TransactionSender(connect(anvil.url), Account.from_key(ANVIL_KEYS[0]), policy=FAST_POLICY)
    deployment = deploy_market(sender, params=MarketParamsConfig(treasury=sender.address), timelock_delay_s=600,
                               proposer=Account.from_key(ANVIL_KEYS[PROPOSER]).address,
                               signers=[Account.from_key(ANVIL_KEYS[7]).address], threshold=1)
    return DeployedMarket(anvil, deployment.market, deployment.payment_token, deployment, [])


def test_a_timelocked_change_shows_pending_then_done_with_its_effect(governed, tmp_path):
    chain = governed.chain
    gov = TimelockGovernance(TransactionSender(connect(chain.url), Account.from_key(ANVIL_KEYS[PROPOSER]),
                                               policy=FAST_POLICY), governed.deployment.timelock, governed.market)
    op = gov.operation("setGpuModel", b"NVIDIA B200".ljust(32, b"\0"), 1000, 183_000)
    scheduled = gov.schedule(op)
    web = make_harness(governed, tmp_path)
    web.sync()
    timelock = web.get("/api/v1/network")["timelock"]
    assert timelock["address"] == governed.deployment.timelock
    assert timelock["min_delay_s"] == gov.min_delay() == 600
    (pending,) = timelock["pending"]
    assert pending["id"] == op.id_hex and pending["state"] == "waiting"
    assert pending["ready_at"] == gov.ready_at(op)
    assert pending["scheduled_tx"] == scheduled.tx_hash
    assert pending["function"] == "setGpuModel"
    assert pending["args"]["powerLimitW"] == 1000 and pending["args"]["memoryMib"] == 183_000

    chain.increase_time(601)
    chain.mine(1)
    web.sync()
    assert web.get("/api/v1/network")["timelock"]["pending"][0]["state"] == "ready"
    executed = gov.execute(op)
    web.sync()
    body = web.get("/api/v1/network")
    assert body["timelock"]["pending"] == []
    assert body["timelock"]["done"][0]["id"] == op.id_hex and body["timelock"]["done"][0]["done_tx"] == executed.tx_hash
    assert {"name": "NVIDIA B200", "power_limit_w": 1000, "memory_mib": 183_000} in body["gpu_models"]
    models = {m["name"]: m for m in web.get("/api/v1/gpu-models")["items"]}
    assert models["NVIDIA B200"]["registered"] is True and models["NVIDIA B200"]["typical_power_w"] == 1000
    web.indexer.stop()
    web.store.close()
