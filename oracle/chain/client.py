"""``MarketClient``: typed access to the deployed ``GpuRentMarket`` for every role.

Views return plain Python values (structs as dicts keyed by the Solidity field names);
writes return a :class:`oracle.chain.tx.TxResult` (gas used, fee, decoded events) after the
receipt was checked, or raise :class:`oracle.chain.errors.TransactionRevertedError` with the
contract's custom error and its arguments (``UsageSettlement_StaleSequence(rentalId=...)``).

Transactions are signed locally (key from an encrypted keystore, :meth:`MarketClient.from_keystore`)
and sent by :class:`oracle.chain.tx.TransactionSender` (nonces, capped fees, retries).

Reports are accepted as the dataclasses of :mod:`oracle.attestation.eip712`, as dicts with the
snake_case or camelCase field names (bytes as ``0x`` hex or bytes), or as tuples in struct order.
Signatures are accepted as one ``bytes`` value or a sequence of 65-byte signatures; a sequence
is ordered by recovered signer before it is packed, as the contract requires.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from eth_account import Account
from web3 import Web3

from oracle.chain.artifacts import load_abi
from oracle.chain.contract import BoundContract, connect
from oracle.chain.structs import (
    FAULT_REPORT_FIELDS,
    OFFER_TERMS_FIELDS,
    USAGE_REPORT_FIELDS,
    ZERO_BYTES32,
    _bytes32,
    _named,
    fault_report_tuple,
    pack_signatures,
    recover,
    rental_uptime_bps,
    struct_tuple,
    usage_report_tuple,
)
from oracle.chain.tx import TransactionSender, TxPolicy, TxResult
from oracle.errors import ChainError
from oracle.protocol import EndReason, RentalStatus

# The struct helpers were defined here before oracle.chain.structs: importers keep these names.
__all__ = ["ERC20_ABI", "FAULT_REPORT_FIELDS", "OFFER_TERMS_FIELDS", "USAGE_REPORT_FIELDS", "ZERO_BYTES32", "MarketClient",
           "OfferTerms", "SignerSet", "fault_report_tuple", "pack_signatures", "recover", "rental_uptime_bps",
           "struct_tuple", "usage_report_tuple"]

ERC20_ABI: list[dict[str, Any]] = [
    {"type": "function", "name": "approve", "stateMutability": "nonpayable",
     "inputs": [{"name": "spender", "type": "address"}, {"name": "amount", "type": "uint256"}],
     "outputs": [{"name": "", "type": "bool"}]},
    {"type": "function", "name": "allowance", "stateMutability": "view",
     "inputs": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"}],
     "outputs": [{"name": "", "type": "uint256"}]},
    {"type": "function", "name": "balanceOf", "stateMutability": "view",
     "inputs": [{"name": "account", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}]},
    {"type": "function", "name": "transfer", "stateMutability": "nonpayable",
     "inputs": [{"name": "to", "type": "address"}, {"name": "amount", "type": "uint256"}],
     "outputs": [{"name": "", "type": "bool"}]},
]


@dataclass(frozen=True)
class SignerSet:
    version: int
    threshold: int
    signers: tuple[str, ...]


@dataclass(frozen=True)
class OfferTerms:
    """Input of ``createOffer``/``updateOffer`` (``gpu_model``/``region`` as text or bytes32).

    The model must be registered on chain (``setGpuModel``); its memory and power limit come
    from that table, not from the offer. ``min_uptime_bps`` and ``max_gap_seconds`` are the
    offer's SLA (0 = no gap promise): downtime beyond them is a DOWNTIME fault.
    """

    gpu_model: str | bytes
    gpu_count: int
    payment_token: str
    price_per_gpu_hour: int
    price_per_kwh: int
    region: str | bytes
    grid_intensity_g_per_kwh: int
    max_duration_seconds: int
    min_uptime_bps: int
    agent: str
    max_gap_seconds: int = 0

    def as_tuple(self) -> tuple:
        return struct_tuple(asdict(self), OFFER_TERMS_FIELDS)


class MarketClient:
    """One account's handle on the deployed market."""

    def __init__(
        self,
        sender: TransactionSender,
        market_address: str,
        abi: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        self.sender = sender
        self.w3 = sender.w3
        self.abi = list(abi) if abi is not None else load_abi("GpuRentMarket")
        self.market = BoundContract(sender, market_address, self.abi, extra_error_abis=[ERC20_ABI])
        self.address = self.market.address
        self._outputs = {
            item["name"]: item.get("outputs", []) for item in self.abi if item.get("type") == "function"
        }

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_private_key(
        cls, rpc_url: str, private_key: bytes | str, market_address: str, *, policy: TxPolicy | None = None
    ) -> "MarketClient":
        """For tests and dev mode; production keys come from :meth:`from_keystore`."""
        sender = TransactionSender(connect(rpc_url), Account.from_key(private_key), policy=policy)
        return cls(sender, market_address)

    @classmethod
    def from_keystore(
        cls,
        rpc_url: str,
        keystore_path: str | Path,
        password: str,
        market_address: str,
        *,
        policy: TxPolicy | None = None,
        dev: bool = False,
    ) -> "MarketClient":
        from oracle.keys import load_keystore

        key = load_keystore(keystore_path, password, dev=dev)
        return cls.from_private_key(rpc_url, key, market_address, policy=policy)

    def as_account(self, private_key: bytes | str) -> "MarketClient":
        """The same market and RPC with another signer (renter, provider, governance...)."""
        sender = TransactionSender(self.w3, Account.from_key(private_key), policy=self.sender.policy)
        return MarketClient(sender, self.address, self.abi)

    @property
    def account(self) -> str:
        return self.sender.address

    @property
    def chain_id(self) -> int:
        return self.sender.chain_id

    # ------------------------------------------------------------------ plumbing
    def view(self, name: str, *args: Any, block: Any = "latest") -> Any:
        """Any view of the market, structs decoded to dicts."""
        return _named(self._outputs.get(name, []), self.market.call(name, *args, block=block))

    def transact(self, name: str, *args: Any, gas: int | None = None) -> TxResult:
        """Any state-changing function of the market, as a checked transaction."""
        return self.market.transact(name, *args, gas=gas)

    def token(self, address: str) -> BoundContract:
        return BoundContract(self.sender, address, ERC20_ABI)

    # ------------------------------------------------------------------ ERC-20 helpers
    def balance_of(self, token: str, account: str | None = None) -> int:
        return int(self.token(token).call("balanceOf", Web3.to_checksum_address(account or self.account)))

    def ensure_allowance(self, token: str, amount: int) -> TxResult | None:
        """Approve the market for ``amount`` of ``token`` unless the allowance already covers it
        (resetting to zero first only for a token that refuses the direct change: USDT)."""
        from oracle.chain.tokens import approvals_needed

        result = None
        for value in approvals_needed(self.w3, token, self.account, self.address, amount):
            result = self.token(token).transact("approve", self.address, value)
        return result

    # ------------------------------------------------------------------ views
    def signer_set(self) -> SignerSet:
        version, threshold, signers = self.market.call("signerSet")
        return SignerSet(int(version), int(threshold), tuple(Web3.to_checksum_address(s) for s in signers))

    def is_signer(self, account: str) -> bool:
        return bool(self.market.call("isSigner", Web3.to_checksum_address(account)))

    def params(self) -> dict[str, Any]:
        return self.view("params")

    def is_payment_token(self, token: str) -> bool:
        return bool(self.market.call("isPaymentToken", Web3.to_checksum_address(token)))

    def min_stake_per_gpu(self, token: str) -> int:
        return int(self.market.call("minStakePerGpu", Web3.to_checksum_address(token)))

    def get_offer(self, offer_id: int) -> dict[str, Any]:
        return self.view("getOffer", offer_id)

    def offer_count(self) -> int:
        return int(self.market.call("offerCount"))

    def rental_terms(self, rental_id: int) -> dict[str, Any]:
        """The terms fixed when the rental opened (``RentalTerms``): agent, model, power limit,
        memory, SLA, fee, timeouts, slash terms, collateral, workload hash. Nodes meter and judge
        a rental by these only."""
        return self.view("rentalTerms", rental_id)

    def gpu_model_of(self, model: str | bytes) -> dict[str, Any]:
        """The on-chain GPU model table's row (``powerLimitW`` 0 = not registered)."""
        return self.view("gpuModelOf", _bytes32(model, "gpu_model"))

    def get_rental(self, rental_id: int) -> dict[str, Any]:
        """The stored rental; ``status``/``endReason`` also as names (``statusName``), and the
        derived ``uptimeBps`` (not stored on chain, see ``rental_uptime_bps``)."""
        rental = self.view("getRental", rental_id)
        rental["statusName"] = RentalStatus(rental["status"]).contract_name
        rental["endReasonName"] = EndReason(rental["endReason"]).contract_name
        rental["uptimeBps"] = rental_uptime_bps(rental)
        return rental

    def rental_count(self) -> int:
        return int(self.market.call("rentalCount"))

    def last_settled_sequence(self, rental_id: int) -> int:
        return int(self.get_rental(rental_id)["sequence"])

    def latest_block_timestamp(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def next_block_timestamp(self) -> int:
        """The earliest timestamp the next block will carry, as the node reports it (its
        ``pending`` block; the latest block's if it has none). A report of an Active rental
        settles only if its ``periodEnd`` is not after the block time."""
        latest = self.latest_block_timestamp()
        try:
            pending = self.w3.eth.get_block("pending")
        except Exception:  # noqa: BLE001 - an RPC without a pending block: the latest is a lower bound
            return latest
        return max(latest, int(pending["timestamp"]))

    def claimable(self, rental_id: int) -> int:
        """Earnings of ``rental_id`` not yet credited to its provider (``claim`` credits them)."""
        return int(self.market.call("claimable", rental_id))

    def signer_set_rotation(self) -> dict[str, int]:
        overlap, previous_threshold, previous_valid_until = self.market.call("signerSetRotation")
        return {"overlap_seconds": int(overlap), "previous_threshold": int(previous_threshold),
                "previous_valid_until": int(previous_valid_until)}

    def withdrawable(self, account: str, token: str) -> int:
        return int(self.market.call("withdrawable", Web3.to_checksum_address(account), Web3.to_checksum_address(token)))

    def stake_of(self, provider: str) -> dict[str, Any]:
        return self.view("stakeOf", Web3.to_checksum_address(provider))

    def required_stake(self, provider: str, gpus: int) -> int:
        return int(self.market.call("requiredStake", Web3.to_checksum_address(provider), gpus))

    def is_fault_settled(self, rental_id: int, fault_id: int) -> bool:
        return bool(self.market.call("isFaultSettled", rental_id, fault_id))

    def usage_report_digest(self, report: Any) -> bytes:
        return bytes(self.market.call("usageReportDigest", usage_report_tuple(report)))

    def usage_batch_digest(self, reports: Sequence[Any]) -> bytes:
        return bytes(self.market.call("usageBatchDigest", [usage_report_tuple(r) for r in reports]))

    def fault_report_digest(self, report: Any) -> bytes:
        return bytes(self.market.call("faultReportDigest", fault_report_tuple(report)))

    def verify_quorum(self, digest: bytes, signatures: bytes) -> None:
        """Raises TransactionRevertedError (OracleQuorum_*) unless ``signatures`` are a quorum."""
        self.market.call("verifyQuorum", digest, signatures)

    def cost_of(self, rental_id: int, available_gpu_seconds: int, energy_millijoules: int) -> int:
        return int(self.market.call("costOf", rental_id, available_gpu_seconds, energy_millijoules))

    def reputation_of(self, provider: str) -> dict[str, Any]:
        return self.view("reputationOf", Web3.to_checksum_address(provider))

    def reputation_score(self, provider: str) -> int:
        return int(self.market.call("reputationScore", Web3.to_checksum_address(provider)))

    def eip712_domain(self) -> dict[str, Any]:
        """OpenZeppelin's ERC-5267 ``eip712Domain()``."""
        fields_, name, version, chain_id, contract, salt, extensions = self.market.call("eip712Domain")
        return {"name": name, "version": version, "chainId": int(chain_id),
                "verifyingContract": Web3.to_checksum_address(contract)}

    # ------------------------------------------------------------------ provider: stake and offers
    def stake(self, token: str, amount: int, *, approve: bool = True) -> TxResult:
        if approve:
            self.ensure_allowance(token, amount)
        return self.transact("stake", Web3.to_checksum_address(token), amount)

    def request_unstake(self, amount: int) -> TxResult:
        return self.transact("requestUnstake", amount)

    def complete_unstake(self) -> TxResult:
        return self.transact("completeUnstake")

    def complete_unstake_to(self, to: str) -> TxResult:
        """``completeUnstakeTo``: the unbonded stake paid to ``to`` (a provider the stake token
        refuses to pay, e.g. a blocklist)."""
        return self.transact("completeUnstakeTo", Web3.to_checksum_address(to))

    def create_offer(self, terms: OfferTerms | Mapping[str, Any]) -> tuple[int, TxResult]:
        terms_tuple = terms.as_tuple() if isinstance(terms, OfferTerms) else struct_tuple(terms, OFFER_TERMS_FIELDS)
        result = self.transact("createOffer", terms_tuple)
        return int(result.events["OfferCreated"][0]["offerId"]), result

    def update_offer(self, offer_id: int, terms: OfferTerms | Mapping[str, Any]) -> TxResult:
        terms_tuple = terms.as_tuple() if isinstance(terms, OfferTerms) else struct_tuple(terms, OFFER_TERMS_FIELDS)
        return self.transact("updateOffer", offer_id, terms_tuple)

    def withdraw_offer(self, offer_id: int) -> TxResult:
        return self.transact("withdrawOffer", offer_id)

    # ------------------------------------------------------------------ rentals
    def open_rental(
        self, offer_id: int, gpu_count: int, budget: int, *, expected_offer_version: int | None = None,
        approve: bool = True, workload_hash: bytes = ZERO_BYTES32,
    ) -> tuple[int, TxResult]:
        """Open a rental (escrowing ``budget``, committing ``workload_hash``, 32 bytes, zero for
        none); returns (rental id, tx)."""
        offer = self.get_offer(offer_id)
        version = offer["version"] if expected_offer_version is None else expected_offer_version
        if approve:
            self.ensure_allowance(offer["paymentToken"], budget)
        result = self.transact("openRental", offer_id, version, gpu_count, budget, _bytes32(workload_hash, "workload_hash"))
        return int(result.events["RentalOpened"][0]["rentalId"]), result

    def start_rental(self, rental_id: int) -> TxResult:
        return self.transact("startRental", rental_id)

    def top_up(self, rental_id: int, amount: int, *, approve: bool = True) -> TxResult:
        if approve:
            offer = self.get_offer(self.get_rental(rental_id)["offerId"])
            self.ensure_allowance(offer["paymentToken"], amount)
        return self.transact("topUp", rental_id, amount)

    def cancel_rental(self, rental_id: int) -> TxResult:
        return self.transact("cancelRental", rental_id)

    def end_rental(self, rental_id: int) -> TxResult:
        return self.transact("endRental", rental_id)

    def close_silent_rental(self, rental_id: int) -> TxResult:
        return self.transact("closeSilentRental", rental_id)

    def finalize_rental(self, rental_id: int) -> TxResult:
        return self.transact("finalizeRental", rental_id)

    def claim(self, rental_ids: Sequence[int]) -> TxResult:
        """Credits each rental's provider with its accrued earnings (anyone may call)."""
        return self.transact("claim", [int(r) for r in rental_ids])

    def withdraw(self, token: str) -> TxResult:
        return self.transact("withdraw", Web3.to_checksum_address(token))

    def withdraw_to(self, token: str, to: str) -> TxResult:
        """``withdrawTo``: the caller's whole balance of ``token`` paid to ``to`` (a payee the
        token refuses to pay, e.g. a USDC-style blocklist)."""
        return self.transact("withdrawTo", Web3.to_checksum_address(token), Web3.to_checksum_address(to))

    # ------------------------------------------------------------------ settlement and slashing
    def _packed(self, digest_fn: Any, arg: Any, signatures: bytes | Sequence[bytes]) -> bytes:
        if isinstance(signatures, (bytes, bytearray)):
            return bytes(signatures)
        return pack_signatures(digest_fn(arg), signatures)

    def settle(self, report: Any, signatures: bytes | Sequence[bytes]) -> TxResult:
        """Submit one quorum-signed usage report; the payout goes to the rental's provider."""
        sigs = self._packed(self.usage_report_digest, report, signatures)
        return self.transact("settle", usage_report_tuple(report), sigs)

    def settle_batch(self, reports: Sequence[Any], signatures: bytes | Sequence[bytes]) -> TxResult:
        """Submit many reports under one quorum signature over ``UsageReportBatch`` (same order)."""
        sigs = self._packed(self.usage_batch_digest, list(reports), signatures)
        return self.transact("settleBatch", [usage_report_tuple(r) for r in reports], sigs)

    def slash(self, fault_report: Any, signatures: bytes | Sequence[bytes]) -> TxResult:
        """Submit a quorum-signed fault report: slashes the provider's stake once per fault."""
        sigs = self._packed(self.fault_report_digest, fault_report, signatures)
        return self.transact("slash", fault_report_tuple(fault_report), sigs)

    submit_fault = slash

    # ------------------------------------------------------------------ governance
    def set_signer_set(self, signers: Sequence[str], threshold: int) -> TxResult:
        ordered = sorted({Web3.to_checksum_address(s) for s in signers}, key=lambda a: int(a, 16))
        return self.transact("setSignerSet", ordered, threshold)

    def set_signer_set_overlap(self, overlap_seconds: int) -> TxResult:
        return self.transact("setSignerSetOverlap", overlap_seconds)

    def set_payment_token(self, token: str, allowed: bool) -> TxResult:
        return self.transact("setPaymentToken", Web3.to_checksum_address(token), allowed)

    def set_gpu_model(self, model: str | bytes, power_limit_w: int, memory_mib: int) -> TxResult:
        return self.transact("setGpuModel", _bytes32(model, "gpu_model"), power_limit_w, memory_mib)

    def set_stake_token(self, token: str, min_stake_per_gpu: int) -> TxResult:
        return self.transact("setStakeToken", Web3.to_checksum_address(token), min_stake_per_gpu)

    def set_params(self, params: Mapping[str, Any] | Sequence[Any]) -> TxResult:
        if isinstance(params, Mapping):
            order = [c["name"] for c in self._function_inputs("setParams")[0]["components"]]
            params = tuple(params[n] for n in order)
        return self.transact("setParams", tuple(params))

    def _function_inputs(self, name: str) -> list[dict[str, Any]]:
        for item in self.abi:
            if item.get("type") == "function" and item.get("name") == name:
                return item["inputs"]
        raise ChainError(f"market ABI has no function {name}")
