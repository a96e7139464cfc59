"""Deploy gpurent's contracts with Brownie.

``brownie run scripts/deploy.py`` (development network: a local anvil) deploys the linked
libraries, GpuRentMarket and, on development chains, TestStablecoin (allowlisted for payment and
stake), and prints the addresses. Other scripts and tests import ``deploy`` and call it with an
account.
"""

from __future__ import annotations

from brownie import (
    GovernanceLogic,
    GpuRentMarket,
    MarketTimelock,
    OfferLogic,
    RentalLogic,
    OperatorRegistry,
    SettlementLogic,
    StakingLogic,
    TestStablecoin,
    accounts,
    network,
)

# Sane defaults: 1% protocol fee; half of a slash to the renter (capped by what the rental cost
# it); a fault slashes 10% of the rental's collateral, each kind once per hour; 1 h to start;
# 1 h of silence closes; 1 day settlement grace; rentals up to 30 days; 32 days unbonding (the
# contract keeps it above the longest rental plus the grace); reputation prior 100 tUSD of fees.
DEFAULT_PARAMS = {
    "protocolFeeBps": 100,
    "renterSlashShareBps": 5_000,
    "slashBps": 1_000,
    "startTimeout": 3_600,
    "silenceTimeout": 3_600,
    "settlementGrace": 86_400,
    "unbondingDelay": 32 * 86_400,
    "maxRentalDuration": 30 * 86_400,
    "slashWindowSeconds": 3_600,
    "reputationPrior": 100 * 10**6,
}
PARAM_ORDER = ("protocolFeeBps", "renterSlashShareBps", "slashBps", "startTimeout", "silenceTimeout",
               "settlementGrace", "unbondingDelay", "maxRentalDuration", "slashWindowSeconds", "reputationPrior")
DEFAULT_MIN_STAKE_PER_GPU = 100 * 10**6  # 100 tUSD (6 decimals) per GPU listed
# Oracle operators (docs/economics.md, "Operators"): bond 1,000 tUSD; half of it slashed per proven
# equivocation, a fifth of that to the prover; 14 days unbonding; 0.005 tUSD rebate per report.
DEFAULT_MIN_OPERATOR_BOND = 1_000 * 10**6
DEFAULT_OPERATOR_PARAMS = {"slashBps": 5_000, "proverRewardBps": 2_000, "unbondingDelay": 14 * 86_400,
                           "rebatePerReport": 5_000}
LIBRARIES = (OfferLogic, StakingLogic, GovernanceLogic, RentalLogic, SettlementLogic)
ZERO_ADDRESS = "0x" + "00" * 20


def params_tuple(treasury: str, **overrides: int) -> tuple:
    """MarketParams as the tuple the constructor and setParams take."""
    p = dict(DEFAULT_PARAMS, **overrides)
    return (treasury, *(p[name] for name in PARAM_ORDER))


def register_gpu_models(market, account) -> list[str]:
    """Registers every row of oracle/gpu_models.py in the market's GPU model table."""
    from oracle.gpu_models import GPU_MODELS

    for model in GPU_MODELS:
        market.setGpuModel(model.name.encode().ljust(32, b"\0"), model.power_limit_w, model.memory_mib,
                           {"from": account})
    return [model.name for model in GPU_MODELS]


def hand_to_timelock(market, account, *, delay_s: int, proposer: str | None = None, registry=None):
    """Deploys a MarketTimelock (proposer: `proposer`, default `account`; anyone executes once
    the delay has passed), grants it the admin and governance roles of the market (and of the
    operator registry, if given), and makes `account` renounce them: the deployer keeps no role."""
    timelock = MarketTimelock.deploy(delay_s, [proposer or account.address], [ZERO_ADDRESS], {"from": account})
    for contract in (market, registry):
        if contract is None:
            continue
        admin_role, gov_role = contract.DEFAULT_ADMIN_ROLE(), contract.GOVERNANCE_ROLE()
        for role in (gov_role, admin_role):
            contract.grantRole(role, timelock, {"from": account})
        for role in (gov_role, admin_role):
            contract.renounceRole(role, account, {"from": account})
    return timelock


def operator_fee_share_bps() -> int:
    """The operators' share of each protocol fee the deployment links the registry with:
    GPURENT_OPERATOR_FEE_SHARE_BPS, else oracle/deployment.py's DEFAULT_OPERATOR_FEE_SHARE_BPS
    (docs/economics.md, "Operators"); 0 leaves the registry unlinked."""
    import os

    from oracle.deployment import DEFAULT_OPERATOR_FEE_SHARE_BPS

    value = int(os.environ.get("GPURENT_OPERATOR_FEE_SHARE_BPS", DEFAULT_OPERATOR_FEE_SHARE_BPS))
    if not 0 <= value <= 10_000:
        raise SystemExit(f"GPURENT_OPERATOR_FEE_SHARE_BPS must be 0..10000 basis points, not {value}")
    return value


def link_operator_registry(market, registry, account, fee_share_bps: int):
    """Links `registry` to `market` with `fee_share_bps` of each protocol fee (0: leaves it
    unlinked). From then on every signer set governance installs must be bonded in it. Returns
    the transaction (None when not linked)."""
    if not fee_share_bps:
        return None
    return market.setOperatorRegistry(registry, fee_share_bps, {"from": account})


def deploy_libraries(account) -> dict:
    """Deploys the external libraries GpuRentMarket links against (Brownie links the latest
    deployment of each automatically)."""
    return {lib._name: lib.deploy({"from": account}) for lib in LIBRARIES}


def deploy_operator_registry(account, market, token, *, treasury: str | None = None,
                             min_bond: int = DEFAULT_MIN_OPERATOR_BOND, **overrides: int):
    """Deploys the OperatorRegistry of `market` (admin and governance: `account`) with `token` as
    bond and rebate token (minimum bond `min_bond`)."""
    p = dict(DEFAULT_OPERATOR_PARAMS, **overrides)
    params = (treasury or account.address, p["slashBps"], p["proverRewardBps"], p["unbondingDelay"], token,
              p["rebatePerReport"])
    registry = OperatorRegistry.deploy(market, account, params, {"from": account})
    registry.setBondToken(token, min_bond, {"from": account})
    return registry


def deploy(
    account,
    *,
    treasury: str | None = None,
    signers: list[str] | None = None,
    threshold: int | None = None,
    stablecoin: bool | None = None,
    min_stake_per_gpu: int = DEFAULT_MIN_STAKE_PER_GPU,
    timelock_delay: int | None = None,
    proposer: str | None = None,
    fee_share_bps: int | None = None,
    **param_overrides: int,
) -> dict:
    """Deploys the libraries, GpuRentMarket (admin and governance: `account`), registers the GPU
    models of oracle/gpu_models.py and, when `stablecoin` (default: on development chains),
    TestStablecoin allowlisted for payment and stake. Installs `signers` (sorted ascending) with
    `threshold` (default: majority) if given. With `timelock_delay`, the market's roles then go
    to a MarketTimelock (proposer `proposer`, default `account`) and `account` keeps none.
    With the stablecoin, the OperatorRegistry is deployed and linked with `fee_share_bps` of each
    protocol fee (default: operator_fee_share_bps(); 0 leaves it unlinked).

    Returns {"market": ..., "stablecoin": ... or None, "libraries": {...}, "timelock": ... or None}.
    """
    if stablecoin is None:
        stablecoin = network.show_active().startswith("development") or network.show_active() == "anvil"
    libraries = deploy_libraries(account)
    market = GpuRentMarket.deploy(account, params_tuple(treasury or account.address, **param_overrides),
                                  {"from": account})
    token = None
    if stablecoin:
        token = TestStablecoin.deploy({"from": account})
        market.setPaymentToken(token, True, {"from": account})
        market.setStakeToken(token, min_stake_per_gpu, {"from": account})
    if signers:
        ordered = sorted(signers, key=lambda a: int(str(a), 16))
        market.setSignerSet(ordered, threshold or len(ordered) // 2 + 1, {"from": account})
    registry = None
    if token is not None:
        registry = deploy_operator_registry(account, market, token, treasury=treasury)
        link_operator_registry(market, registry, account,
                               operator_fee_share_bps() if fee_share_bps is None else fee_share_bps)
    models = register_gpu_models(market, account)
    timelock = None
    if timelock_delay is not None:
        timelock = hand_to_timelock(market, account, delay_s=timelock_delay, proposer=proposer, registry=registry)
    return {"market": market, "stablecoin": token, "libraries": libraries, "operator_registry": registry,
            "timelock": timelock, "gpu_models": models}


def main() -> dict:
    if _is_live_network():
        return deploy_live()
    import os

    account = accounts[0]
    deployed = deploy(account, timelock_delay=int(os.environ.get("GPURENT_TIMELOCK_DELAY", "60")),
                      proposer=os.environ.get("GPURENT_PROPOSER") or None)
    print(f"GpuRentMarket   {deployed['market'].address}")
    print(f"MarketTimelock  {deployed['timelock'].address} (holds the market's roles; the deployer none)")
    if deployed["operator_registry"] is not None:
        registry, share = deployed["market"].operatorRegistry()
        linked = f"linked, {share} bps of each fee" if registry != ZERO_ADDRESS else "not linked"
        print(f"OperatorRegistry {deployed['operator_registry'].address} ({linked})")
    if deployed["stablecoin"] is not None:
        print(f"TestStablecoin  {deployed['stablecoin'].address}")
    for name, lib in deployed["libraries"].items():
        print(f"{name:<15} {lib.address}")
    return deployed


# -- public testnets (Sepolia, Base Sepolia): `brownie run scripts/deploy.py --network <network>` --

LIVE_ENV_HELP = """\
  GPURENT_DEPLOYER           Brownie account id (`brownie accounts new <id>`), default gpurent-deployer
  GPURENT_DEPLOYER_PASSWORD  its password (prompted if unset)
  GPURENT_PAYMENT_TOKEN      an existing ERC-20 for payment and stake (default: deploy TestStablecoin)
  GPURENT_MIN_STAKE_PER_GPU  in the token's smallest unit (default 100 tUSD = 100000000)
  GPURENT_SIGNERS            comma-separated oracle node addresses; GPURENT_THRESHOLD (default: majority)
  GPURENT_PROPOSER           who schedules governance changes through the timelock (a Safe multisig;
                             default: the deployer, for testnets only)
  GPURENT_TIMELOCK_DELAY     seconds each governance change waits (default 172800, 2 days)
  GPURENT_OPERATOR_FEE_SHARE_BPS  the oracle operators' share of each protocol fee; the registry is
                             linked with it (default 5000; 0 leaves it unlinked)
  GPURENT_DEPLOYMENTS        deployment file (default ~/.gpurent/deployments.json)"""


def _is_live_network() -> bool:
    active = network.show_active() or ""
    return not (active.startswith("development") or active == "anvil" or active.endswith("-fork"))


def deploy_live() -> dict:
    """Deploy to the active live network from Brownie's encrypted account store and write the
    gpurent deployment file (the same one `gpurent deploy` writes), then print what to verify."""
    import os
    import time

    from brownie import chain, web3

    from oracle.deployment import (
        Deployment,
        NETWORK_NAMES,
        save_deployment,
        verification_lines,
    )

    name = os.environ.get("GPURENT_DEPLOYER", "gpurent-deployer")
    if name not in accounts.load():  # the ids in ~/.brownie/accounts
        raise SystemExit(f"no Brownie account {name!r}: create it with `brownie accounts new {name}` "
                         f"(or `brownie accounts import {name} keystore.json`), or set GPURENT_DEPLOYER.\n"
                         + LIVE_ENV_HELP)
    account = accounts.load(name, password=os.environ.get("GPURENT_DEPLOYER_PASSWORD"))
    payment_token = os.environ.get("GPURENT_PAYMENT_TOKEN") or None
    min_stake = int(os.environ.get("GPURENT_MIN_STAKE_PER_GPU", DEFAULT_MIN_STAKE_PER_GPU))
    signers = [s.strip() for s in os.environ.get("GPURENT_SIGNERS", "").split(",") if s.strip()]
    threshold = int(os.environ["GPURENT_THRESHOLD"]) if os.environ.get("GPURENT_THRESHOLD") else None
    print(f"deploying gpurent to {network.show_active()} (chain {chain.id}) from {account.address}")

    # gpurent's deployment file below is the record of this deployment; Brownie's own
    # bookkeeping of live deployments is switched off for this run: it fails in a background
    # thread with a traceback (Brownie 1.22: a Sources-vs-dict type error in its database), and
    # the build/deployments/<chain id> artifacts it writes make every later `brownie run` on a
    # chain without that code (a rehearsal anvil with the same chain id) refuse to connect.
    import brownie.network.contract as brownie_contract

    brownie_contract._add_deployment = lambda *args, **kwargs: None
    brownie_contract.ProjectContract._save_deployment = lambda self: None

    proposer = os.environ.get("GPURENT_PROPOSER") or None
    if proposer is None and chain.id in (1, 8453):
        raise SystemExit("GPURENT_PROPOSER (a Safe multisig address) is required on a production chain\n" + LIVE_ENV_HELP)
    delay = int(os.environ.get("GPURENT_TIMELOCK_DELAY", str(2 * 86_400)))
    # The allowlist calls need the governance role, so they come before the hand-over.
    fee_share = operator_fee_share_bps()
    deployed = deploy(account, signers=signers, threshold=threshold, stablecoin=payment_token is None,
                      min_stake_per_gpu=min_stake, timelock_delay=None, fee_share_bps=fee_share)
    market = deployed["market"]
    txs_setup = {}
    registry = deployed["operator_registry"]
    if deployed["stablecoin"] is None:
        txs_setup["allow payment token"] = market.setPaymentToken(payment_token, True, {"from": account}).txid
        txs_setup["allow stake token"] = market.setStakeToken(payment_token, min_stake, {"from": account}).txid
        registry = deploy_operator_registry(account, market, payment_token)
        link = link_operator_registry(market, registry, account, fee_share)
        if link is not None:
            txs_setup["link operator registry"] = link.txid
    timelock = hand_to_timelock(market, account, delay_s=delay, proposer=proposer, registry=registry)
    txs = {f"library {n}": lib.tx.txid for n, lib in deployed["libraries"].items()}
    txs["market"] = market.tx.txid
    token_address = payment_token
    if deployed["stablecoin"] is not None:
        token_address = deployed["stablecoin"].address
        txs["stablecoin"] = deployed["stablecoin"].tx.txid
    txs.update(txs_setup)
    txs["operator registry"] = registry.tx.txid
    txs["timelock"] = timelock.tx.txid
    token = web3.eth.contract(address=token_address, abi=TestStablecoin.abi)
    version, thr, current = market.signerSet()
    deployment = Deployment(
        chain_id=chain.id,
        market=market.address,
        payment_token=token_address,
        stake_token=token_address,
        deployer=account.address,
        governance=timelock.address,
        block_number=market.tx.block_number,
        network=NETWORK_NAMES.get(chain.id, network.show_active()),
        payment_token_symbol=token.functions.symbol().call(),
        payment_token_decimals=token.functions.decimals().call(),
        test_stablecoin=deployed["stablecoin"] is not None,
        min_stake_per_gpu=min_stake,
        operator_registry=registry.address,
        min_operator_bond=DEFAULT_MIN_OPERATOR_BOND,
        operator_fee_share_bps=int(market.operatorRegistry()[1]),
        signer_set={"version": int(version), "threshold": int(thr), "signers": [str(a) for a in current]},
        params=dict(zip(("treasury", "protocol_fee_bps", "renter_slash_share_bps", "slash_bps", "start_timeout_s",
                         "silence_timeout_s", "settlement_grace_s", "unbonding_delay_s", "max_rental_duration_s",
                         "slash_window_s", "reputation_prior"),
                        [str(v) if i == 0 else int(v) for i, v in enumerate(market.params())])),
        transactions=txs,
        timelock=timelock.address,
        proposer=proposer or account.address,
        timelock_delay_s=delay,
        gpu_models=deployed["gpu_models"],
        tool="brownie run scripts/deploy.py",
        deployed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    path = save_deployment(deployment, os.environ.get("GPURENT_DEPLOYMENTS") or None)
    print(f"deployment written to {path}")
    for line in verification_lines(deployment):
        print(line)
    return deployed
