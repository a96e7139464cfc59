"""`deploy_market` (what `gpurent deploy` runs) against a real anvil: the market's roles go to a
MarketTimelock with the given proposer and delay, the deployer keeps no role, every GPU model of
oracle/gpu_models.py is registered, and governance changes wait the delay (issue 7.5)."""

from __future__ import annotations

import pytest
from eth_account import Account

from oracle.chain.client import MarketClient
from oracle.chain.contract import connect
from oracle.chain.errors import TransactionRevertedError
from oracle.chain.governance import TimelockGovernance
from oracle.chain.tx import TransactionSender
from oracle.actions.deploy import deploy_market
from oracle.deployment import DEFAULT_OPERATOR_FEE_SHARE_BPS, MarketParamsConfig
from oracle.errors import ChainError
from oracle.gpu_models import GPU_MODELS
from oracle.localchain import ANVIL_KEYS

from .conftest import FAST_POLICY

DEPLOYER, PROPOSER, STRANGER = 0, 5, 6


def _client(chain, index: int, market: str) -> MarketClient:
    sender = TransactionSender(connect(chain.url), Account.from_key(ANVIL_KEYS[index]), policy=FAST_POLICY)
    return MarketClient(sender, market)


def test_deploy_hands_every_role_to_the_timelock_and_registers_the_gpu_models(chain):
    deployer = Account.from_key(ANVIL_KEYS[DEPLOYER]).address
    proposer = Account.from_key(ANVIL_KEYS[PROPOSER]).address
    sender = TransactionSender(connect(chain.url), Account.from_key(ANVIL_KEYS[DEPLOYER]), policy=FAST_POLICY)
    deployment = deploy_market(sender, params=MarketParamsConfig(treasury=deployer), timelock_delay_s=600,
                               proposer=proposer)
    client = _client(chain, DEPLOYER, deployment.market)
    gov_role = client.market.call("GOVERNANCE_ROLE")
    admin_role = bytes(32)
    assert deployment.timelock and deployment.governance == deployment.timelock
    assert (deployment.proposer, deployment.timelock_delay_s) == (proposer, 600)
    for role in (gov_role, admin_role):
        assert client.market.call("hasRole", role, deployment.timelock)
        assert not client.market.call("hasRole", role, deployer), "the deployer keeps no role"
    for model in GPU_MODELS:
        row = client.gpu_model_of(model.name)
        assert (row["powerLimitW"], row["memoryMib"]) == (model.power_limit_w, model.memory_mib), model.name
    assert deployment.gpu_models == [m.name for m in GPU_MODELS]
    # The OperatorRegistry is deployed and linked by default (docs/economics.md, "Operators").
    assert deployment.operator_registry
    assert list(client.view("operatorRegistry")) == [deployment.operator_registry, DEFAULT_OPERATOR_FEE_SHARE_BPS]
    assert deployment.operator_fee_share_bps == DEFAULT_OPERATOR_FEE_SHARE_BPS == 5_000
    if deployment.operator_registry:  # the operator registry's roles too
        from oracle.chain.artifacts import load_abi
        from oracle.chain.contract import BoundContract

        registry = BoundContract(client.sender, deployment.operator_registry, load_abi("OperatorRegistry"))
        for role in (registry.call("GOVERNANCE_ROLE"), admin_role):
            assert registry.call("hasRole", role, deployment.timelock)
            assert not registry.call("hasRole", role, deployer)

    # The deployer can no longer govern directly; neither can the proposer.
    with pytest.raises(TransactionRevertedError) as info:
        client.set_gpu_model("NVIDIA B200", 1000, 183_000)
    assert info.value.error_name == "AccessControlUnauthorizedAccount"

    # Through the timelock: a stranger cannot schedule; the proposer schedules; nobody executes
    # before the delay; anyone executes after it.
    stranger_gov = TimelockGovernance(_client(chain, STRANGER, deployment.market).sender, deployment.timelock,
                                      deployment.market)
    op = stranger_gov.operation("setGpuModel", b"NVIDIA B200".ljust(32, b"\0"), 1000, 183_000)
    with pytest.raises(TransactionRevertedError):
        stranger_gov.schedule(op)
    proposer_gov = TimelockGovernance(_client(chain, PROPOSER, deployment.market).sender, deployment.timelock,
                                      deployment.market)
    proposer_gov.schedule(op)
    assert proposer_gov.state(op) == "waiting"
    with pytest.raises(ChainError):
        stranger_gov.execute(op)
    chain.increase_time(601)
    chain.mine(1)
    stranger_gov.execute(op)
    assert client.gpu_model_of("NVIDIA B200")["memoryMib"] == 183_000
    assert stranger_gov.state(op) == "done"


def test_deploy_refuses_parameters_outside_their_ranges(chain):
    sender = TransactionSender(connect(chain.url), Account.from_key(ANVIL_KEYS[DEPLOYER]), policy=FAST_POLICY)
    treasury = Account.from_key(ANVIL_KEYS[DEPLOYER]).address
    # unbonding not above the longest rental plus the grace: the constructor reverts
    with pytest.raises(TransactionRevertedError) as info:
        deploy_market(sender, params=MarketParamsConfig(treasury=treasury, unbonding_delay_s=14 * 86_400))
    assert info.value.error_name == "GpuRentMarket_InvalidParam"


def test_deploy_with_operator_fee_share_0_leaves_the_registry_unlinked(chain):
    sender = TransactionSender(connect(chain.url), Account.from_key(ANVIL_KEYS[DEPLOYER]), policy=FAST_POLICY)
    deployment = deploy_market(sender, params=MarketParamsConfig(treasury=sender.address), operator_fee_share_bps=0)
    client = _client(chain, DEPLOYER, deployment.market)
    assert deployment.operator_registry  # deployed all the same, for governance to link later
    assert list(client.view("operatorRegistry")) == ["0x" + "00" * 20, 0]
    assert deployment.operator_fee_share_bps == 0
