"""A payee the token blocks (USDC can blocklist an address) takes its money to an address it
names (issue 11): `rent withdraw --to`, `provider unstake --complete --to` and the operator's
`oracle unbond --complete --to` / `oracle withdraw --to`, through oracle.actions on a real anvil."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from eth_account import Account

from oracle.actions import rentals, staking
from oracle.actions.context import context_from_sender
from oracle.actions.offers import create_offer
from oracle.actions.operators import bond, complete_unbond, request_unbond
from oracle.actions.tokens import balance_of
from oracle.chain.anvil import ANVIL_KEYS
from oracle.chain.artifacts import get_artifact
from oracle.chain.client import OfferTerms
from oracle.chain.contract import BoundContract, connect
from oracle.chain.contract import deploy as deploy_contract
from oracle.chain.errors import TransactionRevertedError
from oracle.chain.tx import TransactionSender
from oracle.deployment import save_deployment

from .conftest import FAST_POLICY, GOVERNANCE, PROVIDER, RENTER, DeployedMarket, deploy

pytestmark = [pytest.mark.integration]

ELSEWHERE = Account.from_key(ANVIL_KEYS[7]).address


@pytest.fixture(scope="module")
def market(chain) -> DeployedMarket:
    return deploy(chain)


def _ctx(deployed: DeployedMarket, index: int, home: Path):
    sender = TransactionSender(connect(deployed.chain.url), Account.from_key(ANVIL_KEYS[index]), policy=FAST_POLICY)
    return context_from_sender(sender, deployed.deployment, rpc_url=deployed.chain.url, journal_home=home)


def test_a_renter_the_token_blocks_withdraws_its_refund_to_another_address(market: DeployedMarket, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch):
    gov = _ctx(market, GOVERNANCE, tmp_path)
    art = get_artifact("BlocklistToken")
    address, _ = deploy_contract(gov.sender, art.abi, art.bytecode, "Blocklist USD", "bUSD", 6)
    usdc = BoundContract(gov.sender, address, art.abi)
    renter = _ctx(market, RENTER, tmp_path)
    usdc.transact("mint", renter.address, 100_000_000)
    market.client(GOVERNANCE).set_payment_token(address, True)

    provider = _ctx(market, PROVIDER, tmp_path)
    staking.stake(provider, 2 * provider.client.min_stake_per_gpu(market.token))
    offer = create_offer(provider, OfferTerms(
        gpu_model="NVIDIA H100 80GB HBM3", gpu_count=1, payment_token=address, price_per_gpu_hour=1_000_000,
        price_per_kwh=0, region="SE", grid_intensity_g_per_kwh=40, max_duration_seconds=86_400,
        min_uptime_bps=9_000, agent=ELSEWHERE)).offer
    opened = rentals.open_rental(renter, offer.offer_id, 5_000_000)
    rentals.cancel_rental(renter, opened.rental_id)  # the whole budget back to the renter's balance
    usdc.transact("setBlocked", renter.address, True)

    with pytest.raises(TransactionRevertedError):
        rentals.withdraw(renter, address)  # to itself: the token refuses
    monkeypatch.setenv("GPURENT_HOME", str(tmp_path))
    deployments = tmp_path / "deployments.json"
    save_deployment(market.deployment, deployments)
    from oracle.cli.main import main

    result = CliRunner().invoke(main, ["rent", "withdraw", "--token", address, "--to", ELSEWHERE, "--rpc",
                                       market.chain.url, "--deployments", str(deployments), "--json",
                                       "--dev-account", str(RENTER)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["amount"] == 5_000_000 and out["to"] == ELSEWHERE
    assert balance_of(renter.w3, address, ELSEWHERE) == 5_000_000
    assert renter.client.withdrawable(renter.address, address) == 0


def test_unbonded_stake_and_bond_are_paid_to_the_address_named(market: DeployedMarket, tmp_path: Path):
    provider = _ctx(market, PROVIDER, tmp_path)
    staking.stake(provider, 50_000_000)
    staking.request_unstake(provider, 50_000_000)
    market.chain.increase_time(int(provider.client.params()["unbondingDelay"]) + 1)
    market.chain.mine()
    before = balance_of(provider.w3, market.token, ELSEWHERE)
    done = staking.complete_unstake(provider, to=ELSEWHERE)
    assert done.to == ELSEWHERE and done.returned == 50_000_000
    assert balance_of(provider.w3, market.token, ELSEWHERE) - before == 50_000_000

    operator = _ctx(market, RENTER, tmp_path)
    bonded = bond(operator, 1_000_000_000)
    request_unbond(operator, bonded.active)
    market.chain.increase_time(15 * 86_400)
    market.chain.mine()
    before = balance_of(operator.w3, market.token, ELSEWHERE)
    unbonded = complete_unbond(operator, to=ELSEWHERE)
    assert unbonded.to == ELSEWHERE and unbonded.amount == bonded.active
    assert balance_of(operator.w3, market.token, ELSEWHERE) - before == bonded.active
