#!/usr/bin/env python3
"""Measure GpuRentMarket gas on a fresh local anvil chain and write reports/gas.json.

Run by ``make gas``. Builds with forge (artifacts in build/foundry/out), starts its own anvil
(hardfork pinned, random free port), deploys TestStablecoin + GpuRentMarket, drives every
external state-changing function through web3.py and records each receipt's ``gasUsed``
(whole transaction: 21,000 base + calldata + execution - refunds).

Headline numbers (the issue's targets, TARGETS):
- ``settle_single_3of5``: ``settle`` of one rental's next report (steady state: the rental was
  written by an earlier settlement), 3 signatures of a 5-signer set.
- ``settle_single_3of5_zero_balance``: the same for a provider whose balance is zero (it claimed
  and withdrew everything just before). A settlement touches no balance, so this is the same.
- ``settle_batch_100_per_rental``: one ``settleBatch`` of 100 rentals' next reports (same offer
  and provider, steady state), gasUsed / 100.
- ``settle_batch_100_distinct_providers_per_rental`` / ``..._first_per_rental``: the same for
  100 rentals of 100 different providers, steady state and at each rental's first settlement.
Variants (first settlements, 5 signatures, access lists, claims) are recorded beside them.
Each report's ``periodEnd`` is the chain's time and its usage fits the report bounds (the chain
is warped forward 600 s, the usage of one report, before each round).

Signatures are made with eth_account over the EIP-712 digest computed by
``oracle.attestation.eip712`` and cross-checked against the contract's digest views.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eth_account import Account  # noqa: E402
from eth_utils import keccak  # noqa: E402
from web3 import Web3  # noqa: E402

from oracle.attestation.eip712 import (  # noqa: E402
    FaultReport,
    UsageReport,
    fault_report_digest,
    usage_batch_digest,
    usage_report_digest,
)
from oracle.chain.anvil import free_port  # noqa: E402

HARDFORK = "prague"
OUT = ROOT / "reports" / "gas.json"
TARGETS = {
    "settle_single_3of5": 70_000,
    "settle_single_3of5_zero_balance": 75_000,
    "settle_batch_100_per_rental": 11_898,  # not above the last measurement before claim()
    "settle_batch_100_distinct_providers_per_rental": 12_000,
    "settle_batch_100_distinct_providers_first_per_rental": 20_000,
}
USDC = 10**6
PRICE_PER_GPU_HOUR = 2 * USDC + 500_000  # 2.5 tUSD per GPU-hour
PRICE_PER_KWH = 150_000  # 0.15 tUSD per kWh
PERIOD_END = 1_795_000_000
SIGNER_KEYS = [keccak(text=f"gpurent-gas-report-signer-{i}") for i in range(5)]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{ROOT / 'node_modules' / '.bin'}:{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}"
    return env


def build() -> None:
    subprocess.run(["forge", "build"], cwd=ROOT, env=_env(), check=True, capture_output=True)


LIBRARIES = ("OfferLogic", "StakingLogic", "GovernanceLogic", "RentalLogic", "SettlementLogic")


def artifact(name: str) -> dict:
    return json.loads((ROOT / "build" / "foundry" / "out" / f"{name}.sol" / f"{name}.json").read_text())


def link(bytecode: str, link_references: dict, addresses: dict[str, str]) -> str:
    """Replaces each library placeholder (20 bytes at the given offsets) with its address."""
    code = bytecode.removeprefix("0x")
    for libs in link_references.values():
        for lib, spots in libs.items():
            address = addresses[lib].removeprefix("0x").lower()
            for spot in spots:
                start = 2 * spot["start"]
                code = code[:start] + address + code[start + 2 * spot["length"]:]
    return "0x" + code


class Chain:
    """An anvil process of our own and a web3 connection to it."""

    def __init__(self, accounts: int = 120) -> None:
        self.port = free_port()
        anvil = shutil.which("anvil", path=_env()["PATH"])
        if anvil is None:
            raise SystemExit("anvil not found: run `make setup`")
        self.proc = subprocess.Popen(
            [anvil, "--port", str(self.port), "--hardfork", HARDFORK, "--accounts", str(accounts),
             "--balance", "1000000", "--gas-limit", "100000000", "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{self.port}", request_kwargs={"timeout": 60}))
        for _ in range(100):
            try:
                if self.w3.is_connected():
                    break
            except Exception:  # noqa: BLE001 - anvil still starting
                pass
            time.sleep(0.1)
        else:
            self.close()
            raise SystemExit("anvil did not start")
        self.accounts = self.w3.eth.accounts
        self.version = self.w3.client_version

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def deploy(self, name: str, *args, sender: str, libraries: dict[str, str] | None = None):
        data = artifact(name)
        abi = data["abi"]
        bytecode = link(data["bytecode"]["object"], data["bytecode"].get("linkReferences", {}), libraries or {})
        factory = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        receipt = self.wait(factory.constructor(*args).transact({"from": sender}))
        return self.w3.eth.contract(address=receipt.contractAddress, abi=abi), receipt.gasUsed

    def wait(self, tx_hash: bytes):
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        if receipt.status != 1:
            raise RuntimeError(f"transaction reverted: {tx_hash.hex()}")
        return receipt

    def send(self, fn, sender: str) -> int:
        return self.wait(fn.transact({"from": sender, "gas": 30_000_000})).gasUsed

    def send_with_access_list(self, fn, sender: str) -> int:
        """Sends with the EIP-2930 access list anvil computes for the call (what a submitter
        gets from eth_createAccessList): each listed storage key costs 1,900 up front instead of
        2,100 on its first touch, each listed address 2,400."""
        tx = fn.build_transaction({"from": sender, "gas": 30_000_000})
        listed = self.w3.eth.create_access_list({k: tx[k] for k in ("from", "to", "data", "gas")})
        tx["accessList"] = listed["accessList"]
        return self.wait(self.w3.eth.send_transaction(tx)).gasUsed

    def warp(self, seconds: int) -> None:
        self.w3.provider.make_request("evm_increaseTime", [seconds])
        self.w3.provider.make_request("evm_mine", [])


def sign(digest: bytes, keys: list[bytes]) -> bytes:
    """Concatenated 65-byte r||s||v signatures, ordered by ascending signer address."""
    signed = []
    for key in keys:
        account = Account.from_key(key)
        sig = Account.unsafe_sign_hash(digest, key)
        signed.append((int(account.address, 16), sig.r.to_bytes(32, "big") + sig.s.to_bytes(32, "big") + bytes([sig.v])))
    return b"".join(sig for _, sig in sorted(signed))


def usage_report(rental_id: int, sequence: int, version: int, period_end: int, challenges_passed: int = 1,
                 challenges_failed: int = 0) -> UsageReport:
    """The rental's cumulative report. ``challenges_passed`` defaults to 1: the start challenge,
    judged by the first report (the common case), which an Active rental's settlement does not
    record (the final report does); variants measure reports carrying a failed challenge (the
    record is read and written) and reports that carry no challenge at all."""
    minutes = 10 * sequence
    return UsageReport(
        rental_id=rental_id,
        sequence=sequence,
        period_end=period_end,
        available_gpu_seconds=60 * minutes,
        busy_gpu_seconds=55 * minutes,
        energy_millijoules=60 * minutes * 350_000,  # 350 W
        carbon_milligrams=60 * minutes * 350_000 * 250 // 3_600_000,
        uptime_bps=10_000,
        fault_flags=0,
        challenges_passed=challenges_passed,
        challenges_failed=challenges_failed,
        telemetry_hash=keccak(text=f"telemetry-{rental_id}-{sequence}"),
        signer_set_version=version,
    )


def as_tuple(report: UsageReport) -> tuple:
    return (report.rental_id, report.sequence, report.period_end, report.available_gpu_seconds,
            report.busy_gpu_seconds, report.energy_millijoules, report.carbon_milligrams,
            report.uptime_bps, report.fault_flags, report.challenges_passed, report.challenges_failed,
            report.telemetry_hash, report.signer_set_version)


NO_WORKLOAD = b"\0" * 32  # openRental's workloadHash: none


def _abi_index(name: str, field: str) -> int:
    """Position of `field` in the tuple `name` returns (follows the struct as compiled)."""
    abi = json.loads((ROOT / "build" / "foundry" / "out" / "GpuRentMarket.sol" / "GpuRentMarket.json").read_text())["abi"]
    fn = next(i for i in abi if i.get("type") == "function" and i["name"] == name)
    return [c["name"] for c in fn["outputs"][0]["components"]].index(field)


def offer_terms(token: str, agent: str, gpus: int = 8) -> tuple:
    return (b"NVIDIA H100 80GB HBM3".ljust(32, b"\0"), gpus, token, PRICE_PER_GPU_HOUR, PRICE_PER_KWH,
            b"eu-north-1".ljust(32, b"\0"), 45, 30 * 86_400, 9_900, 0, agent)


def measure() -> dict:
    build()
    chain = Chain()
    try:
        return _measure(chain)
    finally:
        chain.close()


def _measure(chain: Chain) -> dict:
    w3, acc = chain.w3, chain.accounts
    admin, treasury, provider, renter, keeper, agent = acc[:6]  # keeper: any third party
    gas: dict[str, int] = {}
    variants: dict[str, int] = {}

    token, gas["TestStablecoin.deploy"] = chain.deploy("TestStablecoin", sender=admin)
    # MarketParams: fee, renter share, slashBps, start/silence timeouts, grace, unbonding (above the
    # 30-day max rental + grace), max rental, slash window, reputation prior (scripts/deploy.py's).
    params = (treasury, 100, 5_000, 1_000, 3_600, 3_600, 86_400, 32 * 86_400, 30 * 86_400, 3_600, 100 * USDC)
    libraries = {}
    for lib in LIBRARIES:
        contract, gas[f"{lib}.deploy"] = chain.deploy(lib, sender=admin)
        libraries[lib] = contract.address
    market, gas["GpuRentMarket.deploy"] = chain.deploy("GpuRentMarket", admin, params, sender=admin,
                                                      libraries=libraries)
    chain_id = w3.eth.chain_id
    fn = market.functions

    gas["setParams"] = chain.send(fn.setParams(params), admin)
    gas["setPaymentToken"] = chain.send(fn.setPaymentToken(token.address, True), admin)
    gas["setStakeToken"] = chain.send(fn.setStakeToken(token.address, 100 * USDC), admin)
    gas["setGpuModel"] = chain.send(fn.setGpuModel(b"NVIDIA H100 80GB HBM3".ljust(32, b"\0"), 700, 81_559), admin)
    signers = sorted((Account.from_key(k).address for k in SIGNER_KEYS), key=lambda a: int(a, 16))
    gas["setSignerSet_5"] = chain.send(fn.setSignerSet(signers, 3), admin)
    role = fn.GOVERNANCE_ROLE().call()
    gas["grantRole"] = chain.send(fn.grantRole(role, keeper), admin)
    gas["revokeRole"] = chain.send(fn.revokeRole(role, keeper), admin)
    chain.send(fn.grantRole(role, keeper), admin)
    gas["renounceRole"] = chain.send(fn.renounceRole(role, keeper), keeper)
    version = fn.signerSet().call()[0]
    quorum = SIGNER_KEYS[:3]

    def fund(account: str, amount: int) -> None:
        chain.send(token.functions.mint(account, amount), account)
        chain.send(token.functions.approve(market.address, 2**256 - 1), account)

    # Staking and offers.
    fund(provider, 1_000_000 * USDC)
    fund(renter, 100_000_000 * USDC)
    gas["stake_first"] = chain.send(fn.stake(token.address, 10_000 * USDC), provider)
    gas["stake"] = chain.send(fn.stake(token.address, 10_000 * USDC), provider)
    gas["createOffer"] = chain.send(fn.createOffer(offer_terms(token.address, agent)), provider)
    offer_id = fn.offerCount().call()
    gas["updateOffer"] = chain.send(fn.updateOffer(offer_id, offer_terms(token.address, agent)), provider)
    offer_version = fn.getOffer(offer_id).call()[3]
    chain.send(fn.createOffer(offer_terms(token.address, agent, gpus=1)), provider)
    gas["withdrawOffer"] = chain.send(fn.withdrawOffer(fn.offerCount().call()), provider)

    def open_started(budget: int = 1_000 * USDC, by: str = renter, offer: int = offer_id,
                     version_: int = offer_version, start_by: str = provider) -> int:
        chain.send(fn.openRental(offer, version_, 1, budget, NO_WORKLOAD), by)
        rental_id = fn.rentalCount().call()
        chain.send(fn.startRental(rental_id), start_by)
        return rental_id

    # Rental lifecycle.
    gas["openRental"] = chain.send(fn.openRental(offer_id, offer_version, 1, 1_000 * USDC, NO_WORKLOAD), renter)
    rental_id = fn.rentalCount().call()
    gas["topUp"] = chain.send(fn.topUp(rental_id, 100 * USDC), renter)
    gas["startRental"] = chain.send(fn.startRental(rental_id), provider)

    def now() -> int:
        return int(w3.eth.get_block("latest")["timestamp"])

    def settle_one(rid: int, seq: int, sender: str = keeper, keys: list = quorum, passed: int = 1,
                   failed: int = 0) -> int:
        chain.warp(600)  # each report attests 600 more GPU-seconds
        report = usage_report(rid, seq, version, now(), passed, failed)
        digest = usage_report_digest(report, chain_id, market.address)
        assert fn.usageReportDigest(as_tuple(report)).call() == digest, "digest mismatch"
        return chain.send(fn.settle(as_tuple(report), sign(digest, keys)), sender)

    variants["settle_single_3of5_first_report"] = settle_one(rental_id, 1)
    gas["claim_1"] = chain.send(fn.claim([rental_id]), keeper)
    chain.send(fn.withdraw(token.address), provider)
    assert fn.withdrawable(provider, token.address).call() == 0
    gas["settle_single_3of5_zero_balance"] = settle_one(rental_id, 2)
    gas["settle_single_3of5"] = settle_one(rental_id, 3)
    variants["settle_single_5of5_signatures"] = settle_one(rental_id, 4, keys=SIGNER_KEYS)
    variants["settle_single_3of5_challenge_record_changes"] = settle_one(rental_id, 5, failed=1)
    variants["settle_single_3of5_no_challenges"] = settle_one(rental_id, 6, passed=0)

    gas["endRental"] = chain.send(fn.endRental(rental_id), renter)
    chain.warp(86_400 + 1)  # finalization waits the settlement grace (faults can slash until then)
    gas["finalizeRental"] = chain.send(fn.finalizeRental(rental_id), provider)
    gas["withdraw"] = chain.send(fn.withdraw(token.address), provider)

    chain.send(fn.openRental(offer_id, offer_version, 1, 10 * USDC, NO_WORKLOAD), renter)
    gas["cancelRental"] = chain.send(fn.cancelRental(fn.rentalCount().call()), renter)

    silent = open_started()
    chain.warp(3_601)
    gas["closeSilentRental"] = chain.send(fn.closeSilentRental(silent), keeper)

    observed_at = fn.getRental(silent).call()[_abi_index("getRental", "startedAt")]  # within the rental, as slash requires
    fault = FaultReport(rental_id=silent, fault_id=0, kind=1, observed_at=observed_at,
                        evidence_hash=keccak(text="fault-evidence"), signer_set_version=version)
    fault_digest = fault_report_digest(fault, chain_id, market.address)
    fault_tuple = (fault.rental_id, fault.fault_id, fault.kind, fault.observed_at, fault.evidence_hash,
                   fault.signer_set_version)
    assert fn.faultReportDigest(fault_tuple).call() == fault_digest, "fault digest mismatch"
    gas["slash"] = chain.send(fn.slash(fault_tuple, sign(fault_digest, quorum)), keeper)

    # Batches: 100 rentals of one offer (one provider).
    ids = [open_started(budget=100 * USDC) for _ in range(100)]

    def settle_batch(rental_ids: list[int], seq: int, access_list: bool = False, passed: int = 1,
                     failed: int = 0) -> int:
        chain.warp(600)
        reports = [usage_report(rid, seq, version, now(), passed, failed) for rid in rental_ids]
        digest = usage_batch_digest(reports, chain_id, market.address)
        tuples = [as_tuple(r) for r in reports]
        assert fn.usageBatchDigest(tuples).call() == digest, "batch digest mismatch"
        call = fn.settleBatch(tuples, sign(digest, quorum))
        return chain.send_with_access_list(call, keeper) if access_list else chain.send(call, keeper)

    variants["settle_batch_100_first_reports_total"] = settle_batch(ids, 1)
    batch_total = settle_batch(ids, 2)
    gas["settleBatch_100"] = batch_total
    variants["settle_batch_100_per_rental_with_access_list"] = settle_batch(ids, 3, access_list=True) // 100
    variants["settle_batch_100_per_rental_challenge_record_changes"] = settle_batch(ids, 4, failed=1) // 100
    variants["settle_batch_100_per_rental_no_challenges"] = settle_batch(ids, 5, passed=0) // 100
    gas["claim_100_one_provider"] = chain.send(fn.claim(ids), keeper)

    # Batches: 100 rentals of 100 distinct providers (cold offer and balance slots per rental).
    many = []
    for i in range(100):
        p = acc[10 + i]
        fund(p, 1_000 * USDC)
        chain.send(fn.stake(token.address, 100 * USDC), p)
        chain.send(fn.createOffer(offer_terms(token.address, agent, gpus=1)), p)
        oid = fn.offerCount().call()
        many.append(open_started(budget=100 * USDC, offer=oid, version_=0, start_by=p))
    distinct_first = settle_batch(many, 1) // 100
    distinct = settle_batch(many, 2) // 100
    gas["claim_100_distinct_providers"] = chain.send(fn.claim(many), keeper)

    # Unstaking.
    chain.send(fn.withdrawOffer(offer_id), provider)
    gas["requestUnstake"] = chain.send(fn.requestUnstake(1_000 * USDC), provider)
    chain.warp(32 * 86_400 + 1)
    gas["completeUnstake"] = chain.send(fn.completeUnstake(), provider)

    headline = {
        "settle_single_3of5": gas["settle_single_3of5"],
        "settle_single_3of5_zero_balance": gas["settle_single_3of5_zero_balance"],
        "settle_batch_100_per_rental": batch_total // 100,
        "settle_batch_100_distinct_providers_per_rental": distinct,
        "settle_batch_100_distinct_providers_first_per_rental": distinct_first,
    }
    return {
        "generated_by": "make gas (tools/gas_report.py)",
        "within_target": {k: headline[k] <= limit for k, limit in TARGETS.items()},
        "chain": f"{chain.version}, hardfork {HARDFORK}",
        "compiler": "solc 0.8.30, optimizer runs 200, evm_version cancun",
        "measure": "receipt gasUsed of the whole transaction",
        "targets": TARGETS,
        **headline,
        "settle_batch_100_total": batch_total,
        "variants": dict(sorted(variants.items())),
        "functions": dict(sorted(gas.items())),
    }


def main() -> int:
    result = measure()
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in TARGETS}))
    failed = [k for k, ok in result["within_target"].items() if not ok]
    if failed:  # reported, not fatal: the numbers are the deliverable, reviewed in the diff
        print(f"over target: {failed}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
