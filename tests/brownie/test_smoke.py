"""Smoke test: one whole happy path of a rental on GpuRentMarket.

stake -> offer -> open -> start -> settle (3 of 5 oracle signatures made with eth_account over
the EIP-712 digest) -> withdraw -> end -> finalize -> refund withdraw. The exhaustive unit and
adversarial tests live beside this file.
"""

from conftest import finalize_after_grace
import importlib.util
from pathlib import Path

from eth_account import Account
from eth_utils import keccak

from oracle.attestation.eip712 import UsageReport, usage_report_digest

ROOT = Path(__file__).resolve().parents[2]
USD = 10**6
SIGNER_KEYS = [keccak(text=f"gpurent-smoke-signer-{i}") for i in range(5)]


def _deploy_module():
    spec = importlib.util.spec_from_file_location("gpurent_deploy", ROOT / "scripts" / "deploy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sign(digest: bytes, keys) -> bytes:
    """Concatenated r||s||v signatures, ascending by signer address (what the contract wants)."""
    sigs = []
    for key in keys:
        sig = Account.unsafe_sign_hash(digest, key)
        sigs.append((int(Account.from_key(key).address, 16),
                     sig.r.to_bytes(32, "big") + sig.s.to_bytes(32, "big") + bytes([sig.v])))
    return b"".join(s for _, s in sorted(sigs))


def _as_tuple(r: UsageReport) -> tuple:
    return (r.rental_id, r.sequence, r.period_end, r.available_gpu_seconds, r.busy_gpu_seconds,
            r.energy_millijoules, r.carbon_milligrams, r.uptime_bps, r.fault_flags, r.challenges_passed,
            r.challenges_failed, r.telemetry_hash, r.signer_set_version)


def test_smoke_whole_rental(accounts, chain):
    admin, treasury, provider, renter, keeper, agent = accounts[:6]
    signers = [Account.from_key(k).address for k in SIGNER_KEYS]
    deployed = _deploy_module().deploy(admin, treasury=treasury.address, signers=signers, threshold=3,
                                       stablecoin=True)
    market, usd = deployed["market"], deployed["stablecoin"]
    for who in (provider, renter):
        usd.mint(who, 10_000 * USD, {"from": who})
        usd.approve(market, 2**256 - 1, {"from": who})

    # Provider stakes and lists 2 GPUs at 3.6 tUSD per GPU-hour and 0.36 tUSD per kWh.
    market.stake(usd, 1_000 * USD, {"from": provider})
    terms = (b"NVIDIA H100 80GB HBM3".ljust(32, b"\0"), 2, usd.address, 3_600_000, 360_000,
             b"eu-north-1".ljust(32, b"\0"), 45, 86_400, 9_900, 0, agent.address)
    offer_id = market.createOffer(terms, {"from": provider}).return_value
    assert offer_id == 1

    # Renter opens with a 100 tUSD budget; provider starts.
    rental_id = market.openRental(offer_id, 0, 2, 100 * USD, b"\0" * 32, {"from": renter}).return_value
    market.startRental(rental_id, {"from": provider})
    assert usd.balanceOf(market) == 1_100 * USD

    # 2 GPUs x 1000 s available, 2 x 500 Wh of energy: cost = 2000 * 3.6 / 3600 + 1 kWh * 0.36.
    # (2400 s later: a report never attests more than the rental's GPUs had since its start, nor
    # more energy than they draw at their power limit, 700 W for this model, plus 10 %.)
    chain.sleep(2_400)
    chain.mine()
    version = int(market.signerSet()[0])
    report = UsageReport(rental_id=int(rental_id), sequence=10, period_end=chain.time(), available_gpu_seconds=2_000,
                         busy_gpu_seconds=1_800, energy_millijoules=3_600_000_000, carbon_milligrams=45_000,
                         uptime_bps=10_000, fault_flags=0, challenges_passed=3, challenges_failed=0,
                         telemetry_hash=keccak(text="head"), signer_set_version=version)
    digest = usage_report_digest(report, chain.id, market.address)
    assert bytes(market.usageReportDigest(_as_tuple(report))) == digest
    tx = market.settle(_as_tuple(report), _sign(digest, SIGNER_KEYS[1:4]), {"from": keeper})
    cost = 2 * USD + 360_000  # 2 tUSD of GPU time + 0.36 tUSD of energy
    fee = cost * 100 // 10_000
    assert tx.events["UsageSettled"]["payment"] == cost
    assert market.withdrawable(provider, usd) == 0  # earnings accrue in the rental
    assert market.claimable(rental_id) == cost - fee
    market.claim([rental_id], {"from": keeper})  # anyone may claim; the provider is credited
    assert market.withdrawable(provider, usd) == cost - fee

    # Provider withdraws; renter ends; provider finalizes; renter withdraws the refund.
    market.withdraw(usd, {"from": provider})
    assert usd.balanceOf(provider) == 9_000 * USD + cost - fee
    market.endRental(rental_id, {"from": renter})
    finalize_after_grace(market, rental_id, provider)
    assert market.withdrawable(renter, usd) == 100 * USD - cost
    # The deploy script links the OperatorRegistry by default: half of each fee to the operators.
    registry, share = market.operatorRegistry()
    assert registry == deployed["operator_registry"] and share == 5_000
    operators = fee * share // 10_000
    assert market.withdrawable(treasury, usd) == fee - operators
    assert market.withdrawable(registry, usd) == operators
    market.withdraw(usd, {"from": renter})
    assert usd.balanceOf(renter) == 10_000 * USD - cost
    assert usd.balanceOf(market) == 1_000 * USD + fee  # the stake, the treasury's and the operators' fee

    rental = market.getRental(rental_id)
    assert rental[0] == 5  # Finalized
    assert (rental["sequence"], rental["availableGpuSeconds"], rental["paid"]) == (10, 2_000, cost)
    assert rental["claimed"] == cost - fee
    rep = market.reputationOf(provider)
    # Uptime is attested GPU-seconds over the rented GPU-seconds (derived at finalization).
    uptime = min(10_000, 2_000 * 10_000 // (2 * (rental["endedAt"] - rental["startedAt"])))
    assert rep["completedRentals"] == 1 and rep["attestedGpuSeconds"] == 2_000 and rep["feesPaid"] == fee
    assert rep["deliveredFees"] == fee * uptime // 10_000  # the fee weighted by attested uptime
    # The challenge record is kept by reports with a failed challenge and by the final reports
    # settled after the end; this rental's one report (Active, 3 passed) left it empty, and a
    # rental without a recorded challenge keeps its full delivered fee (docs/economics.md).
    assert (rep["challengesPassed"], rep["challengesFailed"]) == (0, 0)
    # score = 10000 x deliveredFees / (feesPaid + prior), prior 100 tUSD (docs/economics.md)
    assert market.reputationScore(provider) == 10_000 * rep["deliveredFees"] // (fee + 100 * USD)
