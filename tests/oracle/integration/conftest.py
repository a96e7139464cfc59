"""Integration fixtures: a real anvil chain with the market deployed (no Brownie).

``deployed_market`` deploys ``GpuRentMarket`` (libraries linked) and a ``TestStablecoin`` through
``oracle.actions.deploy.deploy_market`` on a fresh anvil per test module, with a 2-of-3 signer set of
three node keys, and hands out ``MarketClient``s for each role.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account

from oracle.chain.anvil import ANVIL_KEYS, Anvil
from oracle.chain.client import MarketClient
from oracle.chain.contract import connect
from oracle.chain.tx import TransactionSender, TxPolicy, TxResult
from oracle.telemetry.sources.replay import ReplaySource, backdate_ms

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


def deploy(chain: Anvil, node_keys: list[bytes] = NODE_KEYS, threshold: int = 2,
           operator_fee_share_bps: int = 0) -> DeployedMarket:
    """A market as ``gpurent deploy`` makes it, except that the OperatorRegistry is not linked
    (``operator_fee_share_bps`` 0; deployments link it by default, test_deploy_timelock checks
    that): these tests install signer sets of unbonded keys and count whole fees to the treasury."""
    from oracle.actions.deploy import deploy_market
    from oracle.deployment import MarketParamsConfig

    sender = TransactionSender(connect(chain.url), Account.from_key(ANVIL_KEYS[GOVERNANCE]), policy=FAST_POLICY)
    signers = [Account.from_key(k).address for k in node_keys]
    deployment = deploy_market(
        sender,
        params=MarketParamsConfig(treasury=Account.from_key(ANVIL_KEYS[GOVERNANCE]).address,
                                  protocol_fee_bps=100, start_timeout_s=3600, silence_timeout_s=3600,
                                  settlement_grace_s=3600, unbonding_delay_s=2 * 86400,
                                  max_rental_duration_s=86400),
        signers=signers,
        threshold=threshold,
        mint_test_tokens_to=[Account.from_key(ANVIL_KEYS[i]).address for i in (PROVIDER, RENTER)],
        operator_fee_share_bps=operator_fee_share_bps,
    )
    for address in signers:  # gas money for the nodes' own submissions
        chain.rpc("anvil_setBalance", [address, hex(10**20)])
    return DeployedMarket(chain, deployment.market, deployment.payment_token, deployment, list(node_keys))


@pytest.fixture(scope="module")
def chain():
    with Anvil() as anvil:
        yield anvil


@pytest.fixture
def fresh_chain():
    """An anvil of the test's own: for tests that reorganise the chain or put a lagging RPC before it."""
    with Anvil() as anvil:
        yield anvil


@pytest.fixture
def fixture_contract(fresh_chain):
    """(BoundContract, artifact) of the tiny Fixture contract (fixture_contract.py) on ``fresh_chain``."""
    from .fixture_contract import deploy_fixture

    return deploy_fixture(fresh_chain.url)


def anvil_started_in_the_past(seconds: int = 900) -> Anvil:
    """An anvil whose clock starts ``seconds`` ago, so a rental can start when a (back-dated)
    replay's first sample is stamped."""
    return Anvil(extra_args=["--timestamp", str(int(time.time()) - seconds)])


def node_env(deployed: DeployedMarket, index: int, db_path: Path, **settings: object) -> dict[str, str]:
    """``GPURENT_NODE_*`` of a dev-mode node process with key ``index`` of the deployment, plus
    ``settings`` (``log_level="info"`` -> ``GPURENT_NODE_LOG_LEVEL=info``)."""
    env = {
        "GPURENT_NODE_DEV_MODE": "true",
        "GPURENT_NODE_PRIVATE_KEY": "0x" + deployed.node_keys[index].hex(),
        "GPURENT_NODE_CHAIN_ID": str(deployed.chain.chain_id),
        "GPURENT_NODE_MARKET_ADDRESS": deployed.market,
        "GPURENT_NODE_DB_PATH": str(db_path),
    }
    env.update({f"GPURENT_NODE_{name.upper()}": str(value) for name, value in settings.items()})
    return env


@pytest.fixture(scope="module")
def deployed(chain) -> DeployedMarket:
    return deploy(chain)


@dataclass
class ActiveRental:
    rental_id: int
    offer_id: int
    provider: MarketClient
    renter: MarketClient
    budget: int


def open_rental(deployed: DeployedMarket, *, agent: str | None = None, budget: int = 50_000_000,
                price_per_gpu_hour: int = 3_600_000, price_per_kwh: int = 0,
                extra_stake: int | None = None) -> tuple[int, int]:
    """Provider stakes (if needed: the shortfall for one more GPU plus ``extra_stake``, by default
    the minimum stake per GPU) and lists a 1-GPU offer; renter opens. (offer id, rental id)."""
    from oracle.chain.client import OfferTerms

    provider, renter = deployed.client(PROVIDER), deployed.client(RENTER)
    stake = provider.stake_of(provider.account)
    # Cover one more listed GPU, and the collateral startRental locks beside what running
    # rentals already lock (and slashes so far).
    needed = max(provider.required_stake(provider.account, int(stake["listedGpus"]) + 1),
                 int(stake["locked"]) + provider.required_stake(provider.account, 1))
    shortfall = needed - int(stake["active"])
    if shortfall > 0 or int(stake["active"]) == 0:  # cover one more GPU (and slashes so far)
        if extra_stake is None:
            extra_stake = provider.min_stake_per_gpu(deployed.token)
        provider.stake(deployed.token, max(shortfall, 0) + extra_stake)
    offer_id, _ = provider.create_offer(OfferTerms(
        gpu_model="NVIDIA H100 80GB HBM3", gpu_count=1, payment_token=deployed.token,
        price_per_gpu_hour=price_per_gpu_hour, price_per_kwh=price_per_kwh, region="eu-north-1",
        grid_intensity_g_per_kwh=40, max_duration_seconds=86_400, min_uptime_bps=9_000,
        agent=agent or Account.from_key(ANVIL_KEYS[AGENT]).address,
    ))
    rental_id, _ = renter.open_rental(offer_id, gpu_count=1, budget=budget)
    return offer_id, rental_id


def open_active_rental(deployed: DeployedMarket, *, agent: str | None = None, budget: int = 50_000_000,
                       price_per_gpu_hour: int = 3_600_000, price_per_kwh: int = 0) -> ActiveRental:
    """Provider stakes (if needed) and lists a 1-GPU offer; renter opens; provider starts."""
    offer_id, rental_id = open_rental(deployed, agent=agent, budget=budget, price_per_gpu_hour=price_per_gpu_hour,
                                      price_per_kwh=price_per_kwh)
    provider, renter = deployed.client(PROVIDER), deployed.client(RENTER)
    provider.start_rental(rental_id)
    return ActiveRental(rental_id, offer_id, provider, renter, budget)


def start_when_replay_begins(deployed: DeployedMarket, rental_id: int, source: ReplaySource,
                             speed: float, *, mine_now: bool = True) -> tuple[TxResult, int]:
    """Provider starts the rental at the chain second the back-dated replay ``source`` (played at
    ``speed``) stamps its first sample; from then on ``source`` sends nothing stamped before the
    start. (the ``startRental`` receipt, ``startedAt``)."""
    provider = deployed.client(PROVIDER)
    back_s = backdate_ms(source.duration_ms, speed) / 1000
    head_ts = int(provider.w3.eth.get_block("latest")["timestamp"])
    planned_start = max(head_ts + 1, int(time.time() - back_s) + 2)
    deployed.chain.set_next_timestamp(planned_start)
    started = provider.start_rental(rental_id)
    started_at = int(started.events["RentalStarted"][0]["startedAt"])
    assert started_at == planned_start
    # The chain's clock back to now: reports settle only once their periodEnd (a sample's time,
    # up to the wall clock) is not after the block time. Anvil keeps the clock offset of the
    # block it mines next, so that block is mined now (``mine_now=False``: the caller mines it
    # at once, e.g. as the confirmation of RentalStarted).
    deployed.chain.set_next_timestamp(max(started_at + 1, int(time.time())))
    if mine_now:
        deployed.chain.rpc("evm_mine", [])
    source.not_before_ms = started_at * 1000
    return started, started_at
