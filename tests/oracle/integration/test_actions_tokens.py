"""Tokens as they are in the wild, through oracle.actions and the CLI on a real anvil (issue 11):
metadata in any shape never crashes, approvals work with a token that refuses changing a non-zero
allowance (USDT) and one that refuses approving zero (BNB), a failed `rent open` leaves the
allowance as it found it, and every amount is in the offer's own token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from eth_account import Account

from oracle.actions import rentals, staking
from oracle.actions.context import context_from_sender
from oracle.actions.offers import create_offer
from oracle.actions.tokens import allowance, token_meta
from oracle.chain.anvil import ANVIL_KEYS
from oracle.chain.artifacts import get_artifact
from oracle.chain.client import OfferTerms
from oracle.chain.contract import BoundContract, connect
from oracle.chain.contract import deploy as deploy_contract
from oracle.chain.errors import TransactionRevertedError
from oracle.chain.tx import TransactionSender
from oracle.deployment import load_deployment, save_deployment

from .conftest import FAST_POLICY, GOVERNANCE, PROVIDER, RENTER, DeployedMarket, deploy

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def market(chain) -> DeployedMarket:
    return deploy(chain)


def _sender(deployed: DeployedMarket, index: int) -> TransactionSender:
    return TransactionSender(connect(deployed.chain.url), Account.from_key(ANVIL_KEYS[index]), policy=FAST_POLICY)


def _ctx(deployed: DeployedMarket, index: int, tmp_path: Path):
    return context_from_sender(_sender(deployed, index), deployed.deployment, rpc_url=deployed.chain.url,
                               journal_home=tmp_path)


def _token(deployed: DeployedMarket, name: str, *args) -> BoundContract:
    """Deploy test token ``name``, allow it for payment, mint to the renter."""
    art = get_artifact(name)
    gov = _sender(deployed, GOVERNANCE)
    address, _ = deploy_contract(gov, art.abi, art.bytecode, *args)
    token = BoundContract(gov, address, art.abi)
    token.transact("mint", Account.from_key(ANVIL_KEYS[RENTER]).address, 10**30)
    deployed.client(GOVERNANCE).set_payment_token(address, True)
    return token


def _offer_in(deployed: DeployedMarket, token: str, tmp_path: Path, price: int = 1) -> int:
    provider = _ctx(deployed, PROVIDER, tmp_path)
    stake = provider.client.stake_of(provider.address)
    need = provider.client.required_stake(provider.address, int(stake["listedGpus"]) + 1) - int(stake["active"])
    if need > 0 or int(stake["active"]) == 0:
        staking.stake(provider, max(need, 0) + provider.client.min_stake_per_gpu(deployed.token))
    created = create_offer(provider, OfferTerms(
        gpu_model="NVIDIA H100 80GB HBM3", gpu_count=1, payment_token=token, price_per_gpu_hour=price,
        price_per_kwh=0, region="SE", grid_intensity_g_per_kwh=40, max_duration_seconds=86_400,
        min_uptime_bps=9_000, agent=Account.from_key(ANVIL_KEYS[4]).address))
    return created.offer.offer_id


def test_token_metadata_in_every_shape_never_raises(market: DeployedMarket):
    w3 = connect(market.chain.url)
    assert (token_meta(w3, market.token).symbol, token_meta(w3, market.token).decimals) == ("tUSD", 6)
    mkr = token_meta(w3, _token(market, "Bytes32SymbolToken").address)
    assert (mkr.symbol, mkr.decimals, mkr.has_decimals) == ("MKRs", 18, True)
    bare = _token(market, "NoMetadataToken").address
    none = token_meta(w3, bare)
    assert (none.symbol, none.decimals, none.has_decimals) == ("", 18, False)
    assert none.label == f"{bare[:6]}…{bare[-4:]}"


def test_usdt_style_token_resets_a_leftover_allowance_to_zero_first_and_a_failed_open_restores_it(
        market: DeployedMarket, tmp_path: Path):
    usdt = _token(market, "ApprovalRaceToken")
    offer_id = _offer_in(market, usdt.address, tmp_path)
    renter = _ctx(market, RENTER, tmp_path)
    # A leftover non-zero allowance (what a failed `rent open` of the old CLI left behind).
    BoundContract(renter.sender, usdt.address, usdt.abi).transact("approve", market.market, 7)
    plan = rentals.plan_open_rental(renter, offer_id, 5_000_000)
    assert [r.step_key for r in plan] == ["approve-reset", "approve", "openRental"]
    opened = rentals.open_rental(renter, offer_id, 5_000_000)
    assert renter.client.get_rental(opened.rental_id)["budget"] == 5_000_000
    assert allowance(renter.w3, usdt.address, renter.address, market.market) == 0  # pulled in full

    # A failed open (2 GPUs of a 1-GPU offer) after its approval: the allowance goes back to 0 ...
    with pytest.raises(TransactionRevertedError, match="InvalidGpuCount"):
        rentals.open_rental(renter, offer_id, 3_000_000, gpus=2)
    assert allowance(renter.w3, usdt.address, renter.address, market.market) == 0
    # ... so the next open needs no reset and goes through.
    assert [r.step_key for r in rentals.plan_open_rental(renter, offer_id, 4_000_000)] == ["approve", "openRental"]
    assert rentals.open_rental(renter, offer_id, 4_000_000).budget == 4_000_000


def test_token_refusing_zero_approvals_is_never_asked_for_one(market: DeployedMarket, tmp_path: Path):
    bnb = _token(market, "NoZeroApproveToken", "BNB-style", "BNBs", 18)
    offer_id = _offer_in(market, bnb.address, tmp_path)
    renter = _ctx(market, RENTER, tmp_path)
    BoundContract(renter.sender, bnb.address, bnb.abi).transact("approve", market.market, 7)
    assert [r.step_key for r in rentals.plan_open_rental(renter, offer_id, 10**18)] == ["approve", "openRental"]
    with pytest.raises(TransactionRevertedError, match="InvalidGpuCount"):
        rentals.open_rental(renter, offer_id, 10**18, gpus=2)
    assert allowance(renter.w3, bnb.address, renter.address, market.market) == 7  # put back, without a zero
    assert rentals.open_rental(renter, offer_id, 10**18).budget == 10**18
    assert allowance(renter.w3, bnb.address, renter.address, market.market) == 0  # the exact approval was pulled


def _cli(market: DeployedMarket, deployments: Path, *args: str, dev: int | None, expect: int = 0) -> dict:
    from oracle.cli.main import main

    wallet = [] if dev is None else ["--dev-account", str(dev)]
    result = CliRunner().invoke(main, [*args, "--rpc", market.chain.url, "--deployments", str(deployments), "--json",
                                       *wallet], catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return json.loads(result.output) if expect == 0 else {"output": result.output}


def test_rent_open_and_top_up_take_amounts_in_the_offers_own_token(market: DeployedMarket, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch):
    """The issue's case: a renter asked for 10 and escrowed 100,000 units of a 2-decimal token."""
    monkeypatch.setenv("GPURENT_HOME", str(tmp_path))
    two = _token(market, "BlocklistToken", "Two-decimal", "TWO", 2)
    offer_id = _offer_in(market, two.address, tmp_path)
    deployments = tmp_path / "deployments.json"
    save_deployment(market.deployment, deployments)
    opened = _cli(market, deployments, "rent", "open", str(offer_id), "--budget", "10", dev=RENTER)
    assert opened["budget"] == 1_000 and opened["payment_token"] == two.address  # 10 TWO, not 10 tUSD
    topped = _cli(market, deployments, "rent", "top-up", str(opened["rental_id"]), "2.5", dev=RENTER)
    assert topped["budget"] == 1_250
    status = _cli(market, deployments, "rent", "status", str(opened["rental_id"]), dev=None)
    assert status["payment_token_symbol"] == "TWO" and status["payment_token_decimals"] == 2
    bad = _cli(market, deployments, "rent", "top-up", str(opened["rental_id"]), "0.001", dev=RENTER, expect=2)
    assert "decimals" in bad["output"] and "Traceback" not in bad["output"]


@pytest.mark.parametrize("token_name", ["Bytes32SymbolToken", "NoMetadataToken"])
def test_deploy_with_odd_token_metadata_writes_the_deployment_file(market: DeployedMarket, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch, token_name: str):
    monkeypatch.setenv("GPURENT_HOME", str(tmp_path))
    art = get_artifact(token_name)
    address, _ = deploy_contract(_sender(market, GOVERNANCE), art.abi, art.bytecode)
    deployments = tmp_path / "deployments.json"
    out = _cli(market, deployments, "deploy", "--payment-token", address, "--min-stake-per-gpu", "1", dev=GOVERNANCE)
    written = load_deployment(market.chain.chain_id, deployments)
    assert written.market == out["market"] and written.payment_token == address
    assert (written.payment_token_symbol, written.payment_token_decimals) == (
        ("MKRs", 18) if token_name == "Bytes32SymbolToken" else ("", 18))


def test_a_stake_that_fails_after_its_approval_puts_the_allowance_back(market: DeployedMarket, tmp_path: Path):
    """Stake, open and top up share one rule (``staking.execute_funded``): an approval that landed
    for a step that then reverted is undone, so no allowance is left behind for the market."""
    gov = market.client(GOVERNANCE)
    provider = _ctx(market, PROVIDER, tmp_path)
    minimum = provider.client.min_stake_per_gpu(market.token)
    before = allowance(provider.w3, market.token, provider.address, market.market)
    gov.set_stake_token(market.token, 0)  # governance stops taking new stake in the token
    try:
        assert [r.step_key for r in staking.plan_stake(provider, minimum)][-2:] == ["approve", "stake"]
        with pytest.raises(TransactionRevertedError, match="TokenNotAllowed"):
            staking.stake(provider, minimum)
        assert allowance(provider.w3, market.token, provider.address, market.market) == before
    finally:
        gov.set_stake_token(market.token, minimum)
    assert staking.stake(provider, minimum).staked == minimum
