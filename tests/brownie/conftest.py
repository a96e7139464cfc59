"""Shared fixtures for the Brownie tests of GpuRentMarket.

Accounts (Brownie's anvil accounts): 0 admin (DEFAULT_ADMIN_ROLE), 1 governance
(GOVERNANCE_ROLE), 2 provider, 3 renter, 4 second provider, 5 second renter, 6 relayer /
front-runner, 7 the provider's telemetry agent, 8 treasury, 9 stranger (no role, no stake).

Module-scoped fixtures build the market once per module (a fresh chain per module); every test
runs in its own snapshot (``fn_isolation``), so tests are independent and order-free.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from brownie import chain, web3
from eth_account import Account

from market_testkit import (
    FaultReport,
    UsageReport,
    fault_report_digest,
    sign_digest,
    usage_batch_digest,
    usage_report_digest,
)

ORACLE_KEYS = [f"0x{(0xA11CE000 + i):064x}" for i in range(8)]

DECIMALS = 6
UNIT = 10**DECIMALS
MIN_STAKE_PER_GPU = 1_000 * UNIT
PRICE_PER_GPU_HOUR = 3_600_000  # 3.6 tokens per GPU-hour = 1,000 units per GPU-second
PRICE_PER_KWH = 200_000  # 0.2 tokens per kWh
MJ_PER_KWH = 3_600_000_000
OFFER_GPUS = 4
THRESHOLD = 3

PARAMS = {
    "protocolFeeBps": 250,
    "renterSlashShareBps": 6_000,
    "slashBps": 1_000,
    "startTimeout": 3_600,
    "silenceTimeout": 6 * 3_600,
    "settlementGrace": 24 * 3_600,
    "unbondingDelay": 9 * 24 * 3_600,  # above maxRentalDuration + settlementGrace
    "maxRentalDuration": 7 * 24 * 3_600,
    "slashWindowSeconds": 3_600,
    "reputationPrior": 100 * 10**6,
}

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ isolation


@pytest.fixture(scope="module", autouse=True)
def _module_chain(module_isolation):
    """A fresh chain per module."""


@pytest.fixture(autouse=True)
def _isolation(fn_isolation):
    """Every test starts from the module's deployed state; nothing leaks between tests."""


def pytest_configure(config):
    # Brownie's own isolation fixtures call rpc.snapshot/revert and warn about it on every test.
    config.addinivalue_line("filterwarnings", "ignore:rpc\\.\\w+ should not be called directly:FutureWarning")


# ------------------------------------------------------------------ people


@pytest.fixture(scope="module")
def admin(accounts):
    return accounts[0]


@pytest.fixture(scope="module")
def deployer(accounts):
    return accounts[0]


@pytest.fixture(scope="module")
def gov(accounts):
    return accounts[1]


@pytest.fixture(scope="module")
def provider(accounts):
    return accounts[2]


@pytest.fixture(scope="module")
def renter(accounts):
    return accounts[3]


@pytest.fixture(scope="module")
def provider2(accounts):
    return accounts[4]


@pytest.fixture(scope="module")
def renter2(accounts):
    return accounts[5]


@pytest.fixture(scope="module")
def relayer(accounts):
    return accounts[6]


@pytest.fixture(scope="module")
def agent(accounts):
    return accounts[7]


@pytest.fixture(scope="module")
def treasury(accounts):
    return accounts[8]


@pytest.fixture(scope="module")
def stranger(accounts):
    return accounts[9]


@pytest.fixture(scope="session")
def oracle_keys():
    """The initial signer set's keys, ascending by address."""
    return sorted(ORACLE_KEYS[:5], key=lambda k: int(Account.from_key(k).address, 16))


@pytest.fixture(scope="session")
def oracle_addresses(oracle_keys):
    return [Account.from_key(k).address for k in oracle_keys]


@pytest.fixture(scope="session")
def spare_oracle_keys():
    """Keys that are not in the initial signer set (rotation tests), ascending by address."""
    return sorted(ORACLE_KEYS[5:], key=lambda k: int(Account.from_key(k).address, 16))


# ------------------------------------------------------------------ tokens and market


def _deploy_token(TestToken, deployer, name, symbol):
    return TestToken.deploy(name, symbol, DECIMALS, {"from": deployer})


@pytest.fixture(scope="module")
def stablecoin(deployer, accounts, TestStablecoin):
    token = _deploy_stablecoin(TestStablecoin, deployer)
    for acct in accounts[:8]:
        _mint(token, acct, 1_000_000 * UNIT, deployer)
    return token


def _deploy_stablecoin(TestStablecoin, deployer):
    inputs = next(
        (i["inputs"] for i in TestStablecoin.abi if i["type"] == "constructor"), []
    )
    args = {
        0: [],
        1: [deployer],
        2: ["Test USD", "tUSD"],
        3: ["Test USD", "tUSD", DECIMALS],
    }[len(inputs)]
    return TestStablecoin.deploy(*args, {"from": deployer})


def _mint(token, to, amount, sender):
    token.mint(to, amount, {"from": sender})


def params_tuple(treasury, /, **overrides):
    p = dict(PARAMS, **overrides)
    return (
        overrides.get("treasury", treasury),
        p["protocolFeeBps"],
        p["renterSlashShareBps"],
        p["slashBps"],
        p["startTimeout"],
        p["silenceTimeout"],
        p["settlementGrace"],
        p["unbondingDelay"],
        p["maxRentalDuration"],
        p["slashWindowSeconds"],
        p["reputationPrior"],
    )


def finalize_after_grace(market, rental_id, sender):
    """Finalizes an Ended rental once its own settlement grace has passed (waiting for it)."""
    until = int(market.getRental(rental_id)["endedAt"]) + int(market.rentalTerms(rental_id)["settlementGrace"])
    if chain.time() < until:
        chain.sleep(until - chain.time() + 1)
    return market.finalizeRental(rental_id, {"from": sender})


def _load_deploy_module():
    path = ROOT / "scripts" / "deploy.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("gpurent_deploy_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def deploy_market(GpuRentMarket, admin, gov, treasury, oracle_addresses=None, **param_overrides):
    """A market deployed by scripts/deploy.py's ``deploy`` (libraries linked), with governance
    handed from the deployer to ``gov`` and, if given, the signer set installed (threshold 3)."""
    treasury = param_overrides.pop("treasury", treasury)
    params = dict(PARAMS, **param_overrides)
    deploy_script = _load_deploy_module()
    if deploy_script is not None:
        market = deploy_script.deploy(admin, treasury=str(treasury), stablecoin=False, **params)["market"]
    else:  # before the deploy script existed: constructor(admin, params)
        market = GpuRentMarket.deploy(admin, params_tuple(treasury, **params), {"from": admin})
    role = market.GOVERNANCE_ROLE()
    if not market.hasRole(role, gov):
        market.grantRole(role, gov, {"from": admin})
    if admin != gov and market.hasRole(role, admin):
        # keep the roles apart: admin only administers roles, gov governs
        market.renounceRole(role, admin, {"from": admin})
    if oracle_addresses:
        market.setSignerSet(oracle_addresses, THRESHOLD, {"from": gov})
    return market


@pytest.fixture(scope="module")
def market(GpuRentMarket, admin, gov, treasury, oracle_addresses, stablecoin):
    m = deploy_market(GpuRentMarket, admin, gov, treasury, oracle_addresses)
    m.setPaymentToken(stablecoin, True, {"from": gov})
    m.setStakeToken(stablecoin, MIN_STAKE_PER_GPU, {"from": gov})
    return m


# ------------------------------------------------------------------ offers and rentals


def _terms_type(field):
    import brownie

    abi = brownie.project.get_loaded_projects()[0].GpuRentMarket.abi
    fn = next(i for i in abi if i.get("name") == "createOffer")
    return next(c["type"] for c in fn["inputs"][0]["components"] if c["name"] == field)


def gpu_model(name="NVIDIA H100 80GB HBM3"):
    """The GPU model as the contract takes it (a string, or a right-padded bytes32)."""
    return name.encode().ljust(32, b"\0")[:32] if _terms_type("gpuModel") == "bytes32" else name


def offer_terms(token, agent, /, **overrides):
    t = {
        "gpuModel": gpu_model(),
        "gpuCount": OFFER_GPUS,
        "paymentToken": str(token),
        "pricePerGpuHour": PRICE_PER_GPU_HOUR,
        "pricePerKwh": PRICE_PER_KWH,
        "region": b"eu-north-1".ljust(32, b"\0"),
        "gridIntensityGPerKwh": 30,
        "maxDurationSeconds": 7 * 24 * 3_600,
        "minUptimeBps": 9_500,
        "maxGapSeconds": 0,
        "agent": str(agent),
    }
    t.update(overrides)
    return tuple(t.values())


def stake_for(market, token, provider, gpus=OFFER_GPUS, extra=0):
    amount = MIN_STAKE_PER_GPU * gpus + extra
    token.approve(market, amount, {"from": provider})
    return market.stake(token, amount, {"from": provider})


@pytest.fixture(scope="module")
def offer_id(market, stablecoin, provider, agent):
    """Provider staked for exactly its OFFER_GPUS GPUs, with one active offer."""
    stake_for(market, stablecoin, provider)
    tx = market.createOffer(offer_terms(stablecoin, agent), {"from": provider})
    return tx.events["OfferCreated"]["offerId"]


def open_rental(market, token, renter, offer, budget, gpus=1, version=None):
    if version is None:
        version = market.getOffer(offer)["version"]
    token.approve(market, budget, {"from": renter})
    tx = market.openRental(offer, version, gpus, budget, b"\0" * 32, {"from": renter})
    return tx.events["RentalOpened"]["rentalId"]


BUDGET = 100 * UNIT  # 100,000 GPU-seconds at 1,000 units per second on one GPU


@pytest.fixture
def rental_id(market, stablecoin, renter, provider, offer_id):
    """An Active one-GPU rental with BUDGET escrowed."""
    rid = open_rental(market, stablecoin, renter, offer_id, BUDGET)
    market.startRental(rid, {"from": provider})
    return rid


# ------------------------------------------------------------------ reports


class Signer:
    """Builds and signs reports for one market (EIP-712 domain: this chain and this contract)."""

    def __init__(self, market, keys, chain_id=None):
        self.market = market
        self.keys = list(keys)
        self.chain_id = chain_id if chain_id is not None else chain.id

    def version(self) -> int:
        return self.market.signerSet()[0]

    def _sign(self, digest, keys, order=True):
        keys = self.keys[:THRESHOLD] if keys is None else list(keys)
        if order:
            keys = sorted(keys, key=lambda k: int(Account.from_key(k).address, 16))
        return b"".join(sign_digest(k, digest) for k in keys)

    def cover(self, rental_id, available, energy=0) -> None:
        """Moves the chain's clock forward (never back) until a report of an Active rental ending
        now with ``available`` GPU-seconds and ``energy`` mJ is within the report bounds:
        available <= gpuCount * (elapsed + 1), energy <= that * powerLimitW * 1100."""
        r = self.market.getRental(rental_id)
        if int(r["status"]) != 2:
            return
        gpus, power = int(r["gpuCount"]), int(r["powerLimitW"])
        gpu_seconds = max(int(available), -(-int(energy) // (power * 1100)))
        at = int(r["startedAt"]) + max(0, -(-gpu_seconds // gpus) - 1)
        if at > chain.time():
            chain.sleep(at - chain.time())
            chain.mine()

    def usage(self, rental_id, sequence, available, **fields) -> UsageReport:
        if "periodEnd" not in fields:
            self.cover(rental_id, available, fields.get("energyMillijoules", 0))
        fields.setdefault("periodEnd", chain.time())
        fields.setdefault("signerSetVersion", self.version())
        fields.setdefault("busyGpuSeconds", available)
        return UsageReport(rentalId=int(rental_id), sequence=sequence, availableGpuSeconds=available, **fields)

    def fault(self, rental_id, fault_id=0, kind=1, **fields) -> FaultReport:
        # the latest block's time: never after the block the slash lands in (brownie's
        # chain.time() can run a second ahead of it), never before a rental started earlier
        fields.setdefault("observedAt", web3.eth.get_block("latest")["timestamp"])
        fields.setdefault("signerSetVersion", self.version())
        return FaultReport(rentalId=int(rental_id), faultId=fault_id, kind=kind, **fields)

    def usage_digest(self, report, chain_id=None, contract=None):
        return usage_report_digest(report, chain_id or self.chain_id, contract or self.market.address)

    def sign_usage(self, report, keys=None, chain_id=None, contract=None, order=True) -> bytes:
        return self._sign(self.usage_digest(report, chain_id, contract), keys, order)

    def sign_batch(self, reports, keys=None, chain_id=None, contract=None) -> bytes:
        digest = usage_batch_digest(list(reports), chain_id or self.chain_id, contract or self.market.address)
        return self._sign(digest, keys)

    def sign_fault(self, report, keys=None, chain_id=None, contract=None) -> bytes:
        digest = fault_report_digest(report, chain_id or self.chain_id, contract or self.market.address)
        return self._sign(digest, keys)

    # convenience: build, sign with the first THRESHOLD keys and submit; then (``claim``) credit
    # the rental's accrued earnings to its provider, as `gpurent provider withdraw` does before
    # withdrawing (settlement alone credits no balance: test_settlement.py)
    def settle(self, rental_id, sequence, available, sender, energy=0, claim=True, **fields):
        report = self.usage(rental_id, sequence, available, energyMillijoules=energy, **fields)
        tx = self.market.settle(report.as_tuple(), self.sign_usage(report), {"from": sender})
        if claim:
            self.market.claim([int(rental_id)], {"from": sender})
        return tx

    def slash(self, rental_id, sender, fault_id=0, kind=1, **fields):
        report = self.fault(rental_id, fault_id, kind, **fields)
        return self.market.slash(report.as_tuple(), self.sign_fault(report), {"from": sender})


@pytest.fixture(scope="module")
def oracle(market, oracle_keys):
    return Signer(market, oracle_keys)


# ------------------------------------------------------------------ money


def fee_of(paid: int, fee_bps: int) -> int:
    return paid * fee_bps // 10_000


def earned(market, provider, token, rental_ids=None) -> int:
    """A provider's earnings so far: its withdrawable balance plus what its rentals (all, or
    ``rental_ids``) still have to be claimed (settlement accrues earnings in the rental)."""
    ids = rental_ids if rental_ids is not None else range(1, market.rentalCount() + 1)
    unclaimed = sum(int(market.claimable(i)) for i in ids if str(market.getRental(i)["provider"]) == str(provider))
    return int(market.withdrawable(provider, token)) + unclaimed


def cost(available: int, energy: int = 0, price_hour: int = PRICE_PER_GPU_HOUR, price_kwh: int = PRICE_PER_KWH) -> int:
    return available * price_hour // 3_600 + energy * price_kwh // MJ_PER_KWH


def held_for_rentals(market, token) -> int:
    """What the market must hold for rentals not yet finalized: budget - claimed earnings (the
    fee and unclaimed earnings stay in escrow until finalization or a claim)."""
    total = 0
    for rid in range(1, market.rentalCount() + 1):
        r = market.getRental(rid)
        status = int(r["status"])
        if status in (4, 5):  # Cancelled, Finalized: everything moved to withdrawable balances
            continue
        offer = market.getOffer(r["offerId"])
        if str(offer["paymentToken"]) != str(token):
            continue
        total += int(r["budget"]) - int(r["claimed"])
    return total


def held_for_stakes(market, token, providers) -> int:
    """Stakes in `token`, plus slashes held for rentals not yet finalized (paid out at finalization)."""
    total = 0
    for p in providers:
        st = market.stakeOf(p)
        if str(st["token"]) == str(token):
            total += int(st["active"]) + int(st["unbonding"])
    for rid in range(1, market.rentalCount() + 1):
        r = market.getRental(rid)
        if int(r["status"]) != 5 and int(r["slashed"]) and str(market.rentalTerms(rid)["stakeToken"]) == str(token):
            total += int(r["slashed"])
    return total


def held_for_withdrawals(market, token, accounts_) -> int:
    return sum(int(market.withdrawable(a, token)) for a in accounts_)


def assert_solvent(market, token, accounts_):
    """The market's token balance equals escrow + stakes + withdrawable balances, exactly."""
    accounts_ = list(dict.fromkeys(str(a) for a in accounts_))
    escrow = held_for_rentals(market, token)
    stakes = held_for_stakes(market, token, accounts_)
    owed = held_for_withdrawals(market, token, accounts_)
    balance = token.balanceOf(market)
    assert balance == escrow + stakes + owed, (
        f"balance {balance} != escrow {escrow} + stakes {stakes} + withdrawable {owed}"
    )


@pytest.fixture(scope="module")
def solvent(market, stablecoin, accounts):
    """``solvent()`` asserts conservation of the stablecoin over all test accounts (+ extras)."""

    def check(*extra, token=None):
        assert_solvent(market, token or stablecoin, list(accounts) + list(extra))

    return check
