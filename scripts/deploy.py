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
    OfferLogic,
    StakingLogic,
    TestStablecoin,
    accounts,
    network,
)

# Sane defaults: 1% protocol fee; half of a slash to the renter; a fault slashes 10% of the
# minimum stake for the rental's GPUs; 1 h to start; 1 h of silence closes; 1 day settlement
# grace; 14 days unbonding.
DEFAULT_PARAMS = {
    "protocolFeeBps": 100,
    "renterSlashShareBps": 5_000,
    "slashBps": 1_000,
    "startTimeout": 3_600,
    "silenceTimeout": 3_600,
    "settlementGrace": 86_400,
    "unbondingDelay": 14 * 86_400,
}
DEFAULT_MIN_STAKE_PER_GPU = 100 * 10**6  # 100 tUSD (6 decimals) per GPU listed
LIBRARIES = (OfferLogic, StakingLogic, GovernanceLogic)


def params_tuple(treasury: str, **overrides: int) -> tuple:
    """MarketParams as the tuple the constructor and setParams take."""
    p = dict(DEFAULT_PARAMS, **overrides)
    return (treasury, p["protocolFeeBps"], p["renterSlashShareBps"], p["slashBps"], p["startTimeout"],
            p["silenceTimeout"], p["settlementGrace"], p["unbondingDelay"])


def deploy_libraries(account) -> dict:
    """Deploys the external libraries GpuRentMarket links against (Brownie links the latest
    deployment of each automatically)."""
    return {lib._name: lib.deploy({"from": account}) for lib in LIBRARIES}


def deploy(
    account,
    *,
    treasury: str | None = None,
    signers: list[str] | None = None,
    threshold: int | None = None,
    stablecoin: bool | None = None,
    min_stake_per_gpu: int = DEFAULT_MIN_STAKE_PER_GPU,
    **param_overrides: int,
) -> dict:
    """Deploys the libraries, GpuRentMarket (admin and governance: `account`) and, when
    `stablecoin` (default: on development chains), TestStablecoin allowlisted for payment and
    stake. Installs `signers` (sorted ascending) with `threshold` (default: majority) if given.

    Returns {"market": ..., "stablecoin": ... or None, "libraries": {...}}.
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
    return {"market": market, "stablecoin": token, "libraries": libraries}


def main() -> dict:
    account = accounts[0]
    deployed = deploy(account)
    print(f"GpuRentMarket   {deployed['market'].address}")
    if deployed["stablecoin"] is not None:
        print(f"TestStablecoin  {deployed['stablecoin'].address}")
    for name, lib in deployed["libraries"].items():
        print(f"{name:<15} {lib.address}")
    return deployed
