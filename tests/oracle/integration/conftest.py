"""Integration fixtures: a real anvil chain with the market deployed (no Brownie).

``deployed_market`` deploys ``GpuRentMarket`` (libraries linked) and a ``TestStablecoin`` through
``oracle.deployment.deploy_market`` on a fresh anvil per test module, with a 2-of-3 signer set of
three node keys, and hands out ``MarketClient``s for each role.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account

from oracle.chain.anvil import ANVIL_KEYS, Anvil
from oracle.chain.client import MarketClient
from oracle.chain.contract import connect
from oracle.chain.tx import TransactionSender, TxPolicy

REPO = Path(__file__).resolve().parents[3]

# Node keys: three fixed dev keys (not anvil's, so the signer set is visibly separate).
NODE_KEYS = [bytes.fromhex(f"{i:02x}" * 32) for i in (0xC1, 0xC2, 0xC3)]
GOVERNANCE, PROVIDER, RENTER, SUBMITTER, AGENT = 0, 1, 2, 3, 4

FAST_POLICY = TxPolicy(receipt_poll_s=0.02, rebroadcast_after_s=1.0, backoff_base_s=0.05)


def pytest_collection_modifyitems(items):
    if shutil.which("anvil") is None:
        skip = pytest.mark.skip(reason="anvil not on PATH (export PATH=$PWD/node_modules/.bin:$PATH)")
        for item in items:
            if "oracle/integration" in str(item.fspath):
                item.add_marker(skip)


@dataclass
class DeployedMarket:
    chain: Anvil
    market: str
    token: str
    deployment: object
    node_keys: list[bytes]

    def client(self, account_index: int, policy: TxPolicy = FAST_POLICY) -> MarketClient:
        sender = TransactionSender(connect(self.chain.url), Account.from_key(ANVIL_KEYS[account_index]),
                                   policy=policy)
        return MarketClient(sender, self.market)

    def node_client(self, node_index: int, policy: TxPolicy = FAST_POLICY) -> MarketClient:
        """A node's own client (its key must hold ETH for gas: funded at deployment)."""
        sender = TransactionSender(connect(self.chain.url), Account.from_key(self.node_keys[node_index]),
                                   policy=policy)
        return MarketClient(sender, self.market)


def deploy(chain: Anvil, node_keys: list[bytes] = NODE_KEYS, threshold: int = 2) -> DeployedMarket:
    from oracle.deployment import MarketParamsConfig, deploy_market

    sender = TransactionSender(connect(chain.url), Account.from_key(ANVIL_KEYS[GOVERNANCE]), policy=FAST_POLICY)
    signers = [Account.from_key(k).address for k in node_keys]
    deployment = deploy_market(
        sender,
        params=MarketParamsConfig(treasury=Account.from_key(ANVIL_KEYS[GOVERNANCE]).address,
                                  protocol_fee_bps=100, start_timeout_s=3600, silence_timeout_s=3600,
                                  settlement_grace_s=3600, unbonding_delay_s=86400),
        signers=signers,
        threshold=threshold,
        mint_test_tokens_to=[Account.from_key(ANVIL_KEYS[i]).address for i in (PROVIDER, RENTER)],
    )
    for address in signers:  # gas money for the nodes' own submissions
        chain.rpc("anvil_setBalance", [address, hex(10**20)])
    return DeployedMarket(chain, deployment.market, deployment.payment_token, deployment, list(node_keys))


@pytest.fixture(scope="module")
def chain():
    with Anvil() as anvil:
        yield anvil


@pytest.fixture(scope="module")
def deployed(chain) -> DeployedMarket:
    return deploy(chain)
