"""IGpuRentMarket governance: parameters, token allowlists and roles. Every governance
function refuses a caller without GOVERNANCE_ROLE (role-gated function called by a stranger)."""

import pytest
from brownie import ZERO_ADDRESS
from eth_utils import keccak

from conftest import finalize_after_grace, MIN_STAKE_PER_GPU, PARAMS, offer_terms, params_tuple
from market_testkit import event_args, plain, reverts_with

DEFAULT_ADMIN_ROLE = b"\x00" * 32
UNAUTHORIZED = "AccessControlUnauthorizedAccount(address,bytes32)"


def test_GOVERNANCE_ROLE_is_keccak_of_its_name(market):
    assert market.GOVERNANCE_ROLE() == "0x" + keccak(text="GOVERNANCE_ROLE").hex()


def test_roles_after_deployment(market, admin, gov, stranger):
    assert market.hasRole(DEFAULT_ADMIN_ROLE, admin)
    assert market.hasRole(market.GOVERNANCE_ROLE(), gov)
    assert not market.hasRole(market.GOVERNANCE_ROLE(), stranger)


def test_params_returns_what_was_set(market, treasury):
    assert tuple(market.params()) == params_tuple(treasury)


# ------------------------------------------------------------------ setParams


def test_setParams_updates_and_emits(market, gov, stranger):
    new = params_tuple(stranger, protocolFeeBps=1_000, slashBps=5_000, renterSlashShareBps=10_000)
    tx = market.setParams(new, {"from": gov})
    assert tuple(market.params()) == new
    assert tuple(tx.events["ParamsUpdated"]["params"]) == new


def test_setParams_changes_do_not_touch_open_rentals(market, gov, treasury, rental_id):
    before = tuple(market.rentalTerms(rental_id))
    market.setParams(params_tuple(treasury, protocolFeeBps=0, slashBps=5_000, silenceTimeout=60,
                                  settlementGrace=7 * 86_400, unbondingDelay=15 * 86_400), {"from": gov})
    assert tuple(market.rentalTerms(rental_id)) == before
    assert market.rentalTerms(rental_id)["feeBps"] == PARAMS["protocolFeeBps"]


@pytest.mark.parametrize(
    "field,overrides",
    [
        ("treasury", {"treasury": ZERO_ADDRESS}),
        ("protocolFeeBps", {"protocolFeeBps": 1_001}),
        ("renterSlashShareBps", {"renterSlashShareBps": 10_001}),
        ("slashBps", {"slashBps": 5_001}),
        ("startTimeout", {"startTimeout": 0}),
        ("startTimeout", {"startTimeout": 2**32 - 1}),
        ("silenceTimeout", {"silenceTimeout": 59}),
        ("settlementGrace", {"settlementGrace": 0}),
        ("maxRentalDuration", {"maxRentalDuration": 3_599}),
        ("slashWindowSeconds", {"slashWindowSeconds": 86_401}),
        ("unbondingDelay", {"unbondingDelay": 0}),
        ("unbondingDelay", {"unbondingDelay": PARAMS["maxRentalDuration"] + PARAMS["settlementGrace"]}),
        ("unbondingDelay", {"unbondingDelay": 2**32 - 1}),
        ("reputationPrior", {"reputationPrior": 0}),
    ],
)
def test_RevertWhen_setParams_out_of_range(market, gov, treasury, field, overrides):
    with reverts_with("GpuRentMarket_InvalidParam(string)", field):
        market.setParams(params_tuple(treasury, **overrides), {"from": gov})


def test_RevertWhen_setParams_called_by_stranger(market, stranger, treasury):
    with reverts_with(UNAUTHORIZED, stranger.address, market.GOVERNANCE_ROLE()):
        market.setParams(params_tuple(treasury), {"from": stranger})


def test_RevertWhen_setParams_called_by_admin_without_governance_role(market, admin, treasury):
    with reverts_with(UNAUTHORIZED, admin.address, market.GOVERNANCE_ROLE()):
        market.setParams(params_tuple(treasury), {"from": admin})


# ------------------------------------------------------------------ setPaymentToken


def test_setPaymentToken_allows_and_disallows_with_event(market, gov, stablecoin):
    tx = market.setPaymentToken(stablecoin, False, {"from": gov})
    assert not market.isPaymentToken(stablecoin)
    assert event_args(tx.events["PaymentTokenSet"]) == plain((stablecoin.address, False,))
    tx = market.setPaymentToken(stablecoin, True, {"from": gov})
    assert market.isPaymentToken(stablecoin)
    assert event_args(tx.events["PaymentTokenSet"]) == plain((stablecoin.address, True,))


def test_setPaymentToken_disallowed_token_refuses_new_offers(market, gov, stablecoin, provider, agent):
    market.setPaymentToken(stablecoin, False, {"from": gov})
    with reverts_with("OfferBook_PaymentTokenNotAllowed(address)", stablecoin.address):
        market.createOffer(offer_terms(stablecoin, agent, gpuCount=1), {"from": provider})


def test_RevertWhen_setPaymentToken_called_by_stranger(market, stranger, stablecoin):
    with reverts_with(UNAUTHORIZED, stranger.address, market.GOVERNANCE_ROLE()):
        market.setPaymentToken(stablecoin, False, {"from": stranger})


# ------------------------------------------------------------------ setStakeToken


def test_setStakeToken_sets_minimum_with_event(market, gov, stablecoin):
    tx = market.setStakeToken(stablecoin, 5 * MIN_STAKE_PER_GPU, {"from": gov})
    assert market.minStakePerGpu(stablecoin) == 5 * MIN_STAKE_PER_GPU
    assert event_args(tx.events["StakeTokenSet"]) == plain((stablecoin.address, 5 * MIN_STAKE_PER_GPU,))


def test_setStakeToken_zero_disallows_new_stake(market, gov, stablecoin, provider2):
    tx = market.setStakeToken(stablecoin, 0, {"from": gov})
    assert event_args(tx.events["StakeTokenSet"]) == plain((stablecoin.address, 0,))
    assert market.minStakePerGpu(stablecoin) == 0
    stablecoin.approve(market, 1, {"from": provider2})
    with reverts_with("ProviderStaking_TokenNotAllowed(address)", stablecoin.address):
        market.stake(stablecoin, 1, {"from": provider2})


def test_RevertWhen_setStakeToken_called_by_stranger(market, stranger, stablecoin):
    with reverts_with(UNAUTHORIZED, stranger.address, market.GOVERNANCE_ROLE()):
        market.setStakeToken(stablecoin, 1, {"from": stranger})


# ------------------------------------------------------------------ GPU model table


def test_deploy_registers_the_gpu_models_and_offers_take_memory_from_the_table(market, gov, stablecoin, provider, agent):
    from oracle.gpu_models import GPU_MODELS

    for model in GPU_MODELS:
        row = market.gpuModelOf(model.name.encode().ljust(32, b"\0"))
        assert (row["powerLimitW"], row["memoryMib"]) == (model.power_limit_w, model.memory_mib)
    tx = market.setGpuModel(b"NVIDIA B200".ljust(32, b"\0"), 1_000, 183_000, {"from": gov})
    assert event_args(tx.events["GpuModelSet"]) == plain((b"NVIDIA B200".ljust(32, b"\0"), 1_000, 183_000))
    from conftest import stake_for

    stake_for(market, stablecoin, provider, gpus=1)
    oid = market.createOffer(offer_terms(stablecoin, agent, gpuCount=1, gpuModel=b"NVIDIA B200".ljust(32, b"\0")),
                             {"from": provider}).events["OfferCreated"]["offerId"]
    assert market.getOffer(oid)["memoryMib"] == 183_000


def test_RevertWhen_createOffer_with_an_unregistered_gpu_model(market, stablecoin, provider, agent):
    from conftest import stake_for

    stake_for(market, stablecoin, provider, gpus=1)
    model = b"NVIDIA Fake 9000".ljust(32, b"\0")
    with reverts_with("OfferBook_UnknownGpuModel(bytes32)", model):
        market.createOffer(offer_terms(stablecoin, agent, gpuCount=1, gpuModel=model), {"from": provider})


def test_RevertWhen_setGpuModel_called_by_stranger(market, stranger):
    with reverts_with(UNAUTHORIZED, stranger.address, market.GOVERNANCE_ROLE()):
        market.setGpuModel(b"X".ljust(32, b"\0"), 1, 1, {"from": stranger})


# ------------------------------------------------------------------ roles


def test_RevertWhen_grantRole_called_by_stranger(market, stranger):
    with reverts_with(UNAUTHORIZED, stranger.address, DEFAULT_ADMIN_ROLE):
        market.grantRole(market.GOVERNANCE_ROLE(), stranger, {"from": stranger})


def test_RevertWhen_grantRole_called_by_governance_not_admin(market, gov, stranger):
    with reverts_with(UNAUTHORIZED, gov.address, DEFAULT_ADMIN_ROLE):
        market.grantRole(market.GOVERNANCE_ROLE(), stranger, {"from": gov})


def test_RevertWhen_revokeRole_called_by_stranger(market, stranger, gov):
    with reverts_with(UNAUTHORIZED, stranger.address, DEFAULT_ADMIN_ROLE):
        market.revokeRole(market.GOVERNANCE_ROLE(), gov, {"from": stranger})


def test_revokeRole_removes_governance(market, admin, gov, treasury):
    market.revokeRole(market.GOVERNANCE_ROLE(), gov, {"from": admin})
    with reverts_with(UNAUTHORIZED, gov.address, market.GOVERNANCE_ROLE()):
        market.setParams(params_tuple(treasury), {"from": gov})


# ------------------------------------------------------------------ OpenZeppelin surface


def test_eip712Domain_is_gpurent_v1_on_this_chain_and_contract(market):
    from brownie import chain

    fields, name, version, chain_id, contract, salt, extensions = market.eip712Domain()
    assert (name, version, chain_id, contract) == ("gpurent", "1", chain.id, market.address)
    assert fields == "0x0f"  # name, version, chainId, verifyingContract
    assert int(salt.hex() if isinstance(salt, bytes) else salt, 16) == 0 and list(extensions) == []


def test_supportsInterface_access_control_and_erc165(market):
    assert market.supportsInterface("0x7965db0b")  # IAccessControl
    assert market.supportsInterface("0x01ffc9a7")  # IERC165
    assert not market.supportsInterface("0xffffffff")


def test_governance_role_is_administered_by_default_admin(market):
    assert market.getRoleAdmin(market.GOVERNANCE_ROLE()) == "0x" + "00" * 32
    assert market.DEFAULT_ADMIN_ROLE() == "0x" + "00" * 32


def test_grantRole_by_admin_emits_and_gives_governance(market, admin, stranger, treasury):
    tx = market.grantRole(market.GOVERNANCE_ROLE(), stranger, {"from": admin})
    assert event_args(tx.events["RoleGranted"]) == plain((market.GOVERNANCE_ROLE(), stranger, admin))
    market.setParams(params_tuple(treasury), {"from": stranger})


def test_RevertWhen_renounceRole_for_another_account(market, gov, stranger):
    with reverts_with("AccessControlBadConfirmation()"):
        market.renounceRole(market.GOVERNANCE_ROLE(), gov, {"from": stranger})


def test_setStakeToken_disallowed_token_can_still_be_unstaked(market, gov, stablecoin, provider, offer_id):
    from brownie import chain

    market.setStakeToken(stablecoin, 0, {"from": gov})
    market.withdrawOffer(offer_id, {"from": provider})
    market.requestUnstake(MIN_STAKE_PER_GPU * 4, {"from": provider})
    chain.sleep(PARAMS["unbondingDelay"] + 1)
    before = stablecoin.balanceOf(provider)
    market.completeUnstake({"from": provider})
    assert stablecoin.balanceOf(provider) == before + MIN_STAKE_PER_GPU * 4


def test_setPaymentToken_disallowed_token_running_rentals_settle_and_pay_out(market, gov, oracle, stablecoin, renter, provider, relayer, rental_id):
    market.setPaymentToken(stablecoin, False, {"from": gov})
    oracle.settle(rental_id, 1, 100, relayer)
    market.endRental(rental_id, {"from": renter})
    finalize_after_grace(market, rental_id, provider)
    market.withdraw(stablecoin, {"from": renter})
    market.withdraw(stablecoin, {"from": provider})
    assert market.withdrawable(renter, stablecoin) == market.withdrawable(provider, stablecoin) == 0


# ------------------------------------------------------------------ timelock (scripts/deploy.py)


def test_deploy_script_hands_every_role_to_the_timelock(accounts, MarketTimelock):
    """Issue 7.5: `scripts/deploy.py` (what `brownie run scripts/deploy.py` runs) leaves the
    deployer no role; the proposer schedules, nobody executes before the delay, anyone after."""
    from brownie import chain

    from conftest import _load_deploy_module

    deployer, proposer, stranger = accounts[0], accounts[5], accounts[9]
    deployed = _load_deploy_module().deploy(deployer, stablecoin=True, timelock_delay=3_600, proposer=proposer.address)
    market, timelock = deployed["market"], deployed["timelock"]
    for contract in (market, deployed["operator_registry"]):
        for role in (contract.DEFAULT_ADMIN_ROLE(), contract.GOVERNANCE_ROLE()):
            assert contract.hasRole(role, timelock) and not contract.hasRole(role, deployer)
    with reverts_with(UNAUTHORIZED, deployer.address, market.GOVERNANCE_ROLE()):
        market.setGpuModel(b"NVIDIA B200".ljust(32, b"\0"), 1_000, 183_000, {"from": deployer})
    data = market.setGpuModel.encode_input(b"NVIDIA B200".ljust(32, b"\0"), 1_000, 183_000)
    zero = b"\0" * 32
    timelock.schedule(market, 0, data, zero, zero, 3_600, {"from": proposer})
    import brownie

    with brownie.reverts():  # TimelockUnexpectedOperationState: not ready before the delay
        timelock.execute(market, 0, data, zero, zero, {"from": stranger})
    chain.sleep(3_601)
    timelock.execute(market, 0, data, zero, zero, {"from": stranger})
    assert market.gpuModelOf(b"NVIDIA B200".ljust(32, b"\0"))["memoryMib"] == 183_000


def test_deploy_script_links_the_operator_registry_by_default(accounts):
    """Issue 9: `scripts/deploy.py` deploys the OperatorRegistry and links it with the documented
    default fee share (docs/economics.md, "Operators"); 0 leaves it deployed but unlinked."""
    from conftest import _load_deploy_module

    from oracle.deployment import DEFAULT_OPERATOR_FEE_SHARE_BPS

    module = _load_deploy_module()
    deployed = module.deploy(accounts[0], stablecoin=True)
    registry, share = deployed["market"].operatorRegistry()
    assert registry == deployed["operator_registry"].address and share == DEFAULT_OPERATOR_FEE_SHARE_BPS == 5_000
    assert deployed["operator_registry"].market() == deployed["market"].address

    unlinked = module.deploy(accounts[0], stablecoin=True, fee_share_bps=0)
    assert unlinked["operator_registry"] is not None
    assert tuple(unlinked["market"].operatorRegistry()) == ("0x" + "00" * 20, 0)
