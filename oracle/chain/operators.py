"""``OperatorClient``: an oracle operator's handle on the ``OperatorRegistry`` (contracts/operators).

Bonds (``bond``, ``request_unbond``, ``complete_unbond``), earnings (``earnings``: fee shares,
accrued settlement rebates, the operator's share of fees not yet synced), and moving them out
(``sync``, ``claim_rebates``, ``withdraw``, ``withdraw_to``), settlement through the registry
(``settle_for``, ``settle_batch_for``, which accrue the gas rebate) and equivocation proofs
(``prove_equivocation``; ``prove_equivocation_signed`` with batch signatures as evidence). Writes return :class:`oracle.chain.tx.TxResult` after a checked
receipt; reverts raise :class:`oracle.chain.errors.TransactionRevertedError` naming the
registry's custom error (``OperatorRegistry_InSignerSet(operator=...)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from web3 import Web3

from oracle.attestation.eip712 import UsageReport
from oracle.chain.artifacts import load_abi
from oracle.chain.client import ERC20_ABI, _named, pack_signatures, usage_report_tuple
from oracle.chain.contract import BoundContract
from oracle.chain.tx import TransactionSender, TxResult

#: Fields of ``OperatorParams`` (contracts/types/OperatorTypes.sol), in struct order.
OPERATOR_PARAMS_FIELDS = (
    "treasury", "slashBps", "proverRewardBps", "unbondingDelay", "rebateToken", "rebatePerReport",
)


@dataclass(frozen=True)
class Earnings:
    """What an operator has earned in one token, as the registry sees it now (token units)."""

    operator: str
    token: str
    withdrawable: int  # credited: fee shares, claimed rebates, prover rewards
    rebate_reports: int  # settled reports submitted through the registry, not yet claimed
    rebate_per_report: int  # 0 unless ``token`` is the rebate token
    pending_fees: int  # fees of ``token`` not yet synced, for the whole signer set
    bonded: bool
    bond_active: int
    bond_unbonding: int
    bond_release_at: int
    bond_token: str

    @property
    def rebate_claimable(self) -> int:
        """Upper bound: accrued reports x rate (the reserve may pay fewer)."""
        return self.rebate_reports * self.rebate_per_report

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {**asdict(self), "rebate_claimable": self.rebate_claimable}


class OperatorClient:
    """One operator account's handle on the deployed registry."""

    def __init__(self, sender: TransactionSender, registry_address: str,
                 abi: Sequence[dict[str, Any]] | None = None) -> None:
        self.sender = sender
        self.abi = list(abi) if abi is not None else load_abi("OperatorRegistry")
        self.registry = BoundContract(sender, registry_address, self.abi, extra_error_abis=[ERC20_ABI])
        self.address = self.registry.address
        self._outputs = {i["name"]: i.get("outputs", []) for i in self.abi if i.get("type") == "function"}

    @property
    def account(self) -> str:
        return self.sender.address

    def view(self, name: str, *args: Any) -> Any:
        return _named(self._outputs.get(name, []), self.registry.call(name, *args))

    # ------------------------------------------------------------------ views
    def market(self) -> str:
        return Web3.to_checksum_address(self.view("market"))

    def params(self) -> dict[str, Any]:
        return self.view("params")

    def bond_of(self, operator: str | None = None) -> dict[str, Any]:
        return self.view("bondOf", Web3.to_checksum_address(operator or self.account))

    def is_bonded(self, operator: str | None = None) -> bool:
        return bool(self.view("isBonded", Web3.to_checksum_address(operator or self.account)))

    def min_bond(self, token: str) -> int:
        return int(self.view("minBond", Web3.to_checksum_address(token)))

    def balance_of(self, token: str, account: str | None = None) -> int:
        return int(self.view("balanceOf", Web3.to_checksum_address(account or self.account),
                             Web3.to_checksum_address(token)))

    def pending_fees(self, token: str) -> int:
        return int(self.view("pendingFees", Web3.to_checksum_address(token)))

    def rebate_reserve(self, token: str) -> int:
        return int(self.view("rebateReserve", Web3.to_checksum_address(token)))

    def equivocation_proven(self, operator: str, rental_id: int, sequence: int) -> bool:
        return bool(self.view("equivocationProven", Web3.to_checksum_address(operator), rental_id, sequence))

    def earnings(self, token: str, operator: str | None = None) -> Earnings:
        operator = Web3.to_checksum_address(operator or self.account)
        token = Web3.to_checksum_address(token)
        bond = self.bond_of(operator)
        params = self.params()
        rebate_token = Web3.to_checksum_address(params["rebateToken"])
        return Earnings(
            operator=operator,
            token=token,
            withdrawable=self.balance_of(token, operator),
            rebate_reports=int(bond["rebateReports"]),
            rebate_per_report=int(params["rebatePerReport"]) if rebate_token == token else 0,
            pending_fees=self.pending_fees(token),
            bonded=self.is_bonded(operator),
            bond_active=int(bond["active"]),
            bond_unbonding=int(bond["unbonding"]),
            bond_release_at=int(bond["unbondingReleaseAt"]),
            bond_token=Web3.to_checksum_address(bond["token"]),
        )

    # ------------------------------------------------------------------ bonds
    def bond(self, token: str, amount: int, *, approve: bool = True) -> TxResult:
        """Bond ``amount`` of ``token`` (approving the registry first when needed)."""
        token = Web3.to_checksum_address(token)
        if approve:
            from oracle.chain.tokens import approvals_needed

            erc20 = BoundContract(self.sender, token, ERC20_ABI)
            for value in approvals_needed(self.sender.w3, token, self.account, self.address, amount):
                erc20.transact("approve", self.address, value)
        return self.registry.transact("bond", token, amount)

    def request_unbond(self, amount: int) -> TxResult:
        return self.registry.transact("requestUnbond", amount)

    def complete_unbond(self) -> TxResult:
        return self.registry.transact("completeUnbond")

    def complete_unbond_to(self, to: str) -> TxResult:
        """``completeUnbondTo``: the unbonded bond paid to ``to``."""
        return self.registry.transact("completeUnbondTo", Web3.to_checksum_address(to))

    # ------------------------------------------------------------------ fees and rebates
    def sync(self, token: str) -> TxResult:
        return self.registry.transact("sync", Web3.to_checksum_address(token))

    def claim_rebates(self) -> TxResult:
        return self.registry.transact("claimRebates")

    def withdraw(self, token: str) -> TxResult:
        return self.registry.transact("withdraw", Web3.to_checksum_address(token))

    def withdraw_to(self, token: str, to: str) -> TxResult:
        """``withdrawTo``: the caller's registry balance of ``token`` paid to ``to``."""
        return self.registry.transact("withdrawTo", Web3.to_checksum_address(token), Web3.to_checksum_address(to))

    # ------------------------------------------------------------------ settlement and proofs
    def settle_for(self, report: Any, signatures: bytes | Sequence[bytes], digest: bytes | None = None) -> TxResult:
        """Settle one quorum-signed report through the registry (accrues one rebate report).

        ``signatures`` as one packed ``bytes`` value, or a sequence packed in signer order over
        ``digest`` (the market's ``usageReportDigest(report)``).
        """
        return self.registry.transact("settleFor", usage_report_tuple(report), self._packed(signatures, digest))

    def settle_batch_for(self, reports: Sequence[Any], signatures: bytes | Sequence[bytes],
                         digest: bytes | None = None) -> TxResult:
        return self.registry.transact("settleBatchFor", [usage_report_tuple(r) for r in reports],
                                      self._packed(signatures, digest))

    def prove_equivocation(self, report_a: Any, signature_a: bytes, report_b: Any, signature_b: bytes) -> TxResult:
        """Submit two conflicting reports signed by one operator: slashes its bond, rewards the caller."""
        return self.registry.transact("proveEquivocation", usage_report_tuple(report_a), bytes(signature_a),
                                      usage_report_tuple(report_b), bytes(signature_b))

    def prove_equivocation_signed(self, evidence_a: tuple, evidence_b: tuple) -> TxResult:
        """``proveEquivocationSigned``: like :meth:`prove_equivocation`, either report signed alone
        or inside a UsageReportBatch; build each evidence with :func:`signed_report_tuple`."""
        return self.registry.transact("proveEquivocationSigned", evidence_a, evidence_b)

    @staticmethod
    def _packed(signatures: bytes | Sequence[bytes], digest: bytes | None) -> bytes:
        if isinstance(signatures, (bytes, bytearray)):
            return bytes(signatures)
        if digest is None:
            raise ValueError("a digest is needed to order a sequence of signatures")
        return pack_signatures(digest, signatures)


def signed_report_tuple(report: UsageReport, signature: bytes, batch: Sequence[UsageReport] | None = None) -> tuple:
    """One ``SignedReport`` (contracts/types/OperatorTypes.sol) for ``proveEquivocationSigned``:
    ``report`` with a ``signature`` over its own digest, or, given ``batch`` (the reports of the
    signed ``UsageReportBatch``, in order, ``report`` among them), over the batch's digest."""
    hashes: list[bytes] = []
    index = 0
    if batch:
        hashes = [r.struct_hash() for r in batch]
        index = hashes.index(report.struct_hash())  # ValueError when the batch does not hold it
    return usage_report_tuple(report), hashes, index, bytes(signature)


def operator_params_tuple(treasury: str, *, slash_bps: int = 5_000, prover_reward_bps: int = 2_000,
                          unbonding_delay_s: int = 14 * 86_400, rebate_token: str | None = None,
                          rebate_per_report: int = 0) -> tuple:
    """``OperatorParams`` as the tuple the constructor and setParams take (defaults of docs/economics.md)."""
    return (
        Web3.to_checksum_address(treasury), slash_bps, prover_reward_bps, unbonding_delay_s,
        Web3.to_checksum_address(rebate_token) if rebate_token else "0x" + "00" * 20,
        rebate_per_report if rebate_token else 0,
    )
