"""What the aggregator collects and decides: verified node signatures, quorums, outcomes.

Every node's answer is checked before it counts, so a faulty or lying peer can only withhold
its signature, never spoil a submission:

- the report's fields are rebuilt into the EIP-712 dataclass and the digest recomputed locally
  for this chain and market (a peer's claimed digest is not trusted);
- the signature must recover to the signer the peer names, and that signer must be in the
  current on-chain signer set; the report must name the current ``signerSetVersion``;
- signatures are grouped by digest; only a group of ``threshold`` distinct signers of one
  identical report is submitted, packed in strictly ascending signer order (the contract's rule).

Pure: no HTTP, no chain (the peers are :mod:`oracle.node.peers`, the chain the aggregator's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from web3 import Web3

from oracle.chain.client import SignerSet, recover
from oracle.chain.errors import TransactionRevertedError
from oracle.errors import GpurentError
from oracle.protocol import RentalStatus

ACTIVE, ENDED = RentalStatus.ACTIVE, RentalStatus.ENDED


class QuorumNotReached(GpurentError, LookupError):
    """Fewer than ``threshold`` distinct signers of the current set signed one identical report."""


@dataclass(frozen=True)
class NodeSignature:
    """One node's verified signature over ``digest``."""

    url: str
    signer: str
    signature: bytes


@dataclass(frozen=True)
class Quorum:
    """A report and a threshold of verified signatures over its digest, ready to submit."""

    report: Any  # UsageReport or FaultReport
    digest: bytes
    signatures: tuple[NodeSignature, ...]  # ascending signer order

    @property
    def packed(self) -> bytes:
        return b"".join(s.signature for s in self.signatures)

    @property
    def signers(self) -> tuple[str, ...]:
        return tuple(s.signer for s in self.signatures)


@dataclass
class Outcome:
    """What happened to one rental's (or fault's) submission."""

    rental_id: int
    # settled | already_settled | nothing_new | no_quorum | not_settleable | failed | slashed
    # | not_slashable (a slash that would revert or move nothing: never sent) | deferred (left for a later round)
    status: str
    sequence: int | None = None
    chain_sequence: int | None = None  # the rental's last settled sequence on chain, as last read (or settled)
    fault_id: int | None = None
    payment: int = 0
    tx_hash: str | None = None
    gas_used: int | None = None
    signers: tuple[str, ...] = ()
    detail: str = ""
    notes: dict[str, str] = field(default_factory=dict)
    chain_settled_at: int | None = None  # the rental's lastSettledAt on chain, as last read (unix s)

    @property
    def burned_gas(self) -> bool:
        """A transaction of ours was mined and reverted (gas spent for nothing)."""
        return self.status in ("already_settled", "failed") and self.tx_hash is not None and self.gas_used is not None


def reverted(rental_id: int, status: str, exc: TransactionRevertedError, **fields: Any) -> Outcome:
    """Outcome of a revert: at the pre-flight estimate (no gas spent) or in a mined transaction."""
    gas = int(exc.receipt["gasUsed"]) if exc.tx_hash and exc.receipt is not None else None
    return Outcome(rental_id, status, detail=str(exc), tx_hash=exc.tx_hash, gas_used=gas, **fields)


def report_from_fields(cls: type, data: dict[str, Any]) -> Any:
    values = {}
    for name in cls.__dataclass_fields__:
        value = data[name]
        if isinstance(value, str) and value.startswith("0x"):
            value = bytes.fromhex(value[2:])
        values[name] = value
    return cls(**values)


def verify_signed(
    url: str, signed: dict[str, Any], cls: type, digest_of: Callable[[Any], bytes], signer_set: SignerSet
) -> tuple[Any, bytes, NodeSignature] | str:
    """(report, locally computed digest, signature) of one node's answer, or why it is refused."""
    try:
        report = report_from_fields(cls, signed["report"])
        signature = bytes.fromhex(signed["signature"].removeprefix("0x"))
        claimed = Web3.to_checksum_address(signed["signer"])
    except (KeyError, TypeError, ValueError, AttributeError, GpurentError) as exc:
        return f"malformed answer ({exc})"
    if report.signer_set_version != signer_set.version:
        return f"signed for signer set v{report.signer_set_version}, chain has v{signer_set.version}"
    digest = digest_of(report)
    if signed.get("digest") and str(signed["digest"]).lower() != "0x" + digest.hex():
        return "claimed digest differs from the report's digest"
    try:
        signer = recover(digest, signature)
    except Exception as exc:
        return f"signature does not recover ({exc})"
    if signer != claimed:
        return f"signature recovers to {signer}, not the claimed {claimed}"
    if signer not in signer_set.signers:
        return f"{signer} is not in signer set v{signer_set.version}"
    return report, digest, NodeSignature(url, signer, signature)


def quorum_of(members: list[tuple[Any, NodeSignature]], digest: bytes, threshold: int) -> Quorum | None:
    """The first ``threshold`` distinct signers (ascending) of one digest, or None if too few."""
    by_signer: dict[str, NodeSignature] = {}
    for _, sig in members:
        by_signer.setdefault(sig.signer, sig)
    if len(by_signer) < threshold:
        return None
    ordered = sorted(by_signer.values(), key=lambda s: int(s.signer, 16))[:threshold]
    return Quorum(members[0][0], digest, tuple(ordered))


def best_quorum(groups: dict[bytes, list[tuple[Any, NodeSignature]]], threshold: int) -> Quorum | None:
    """Among digests with a quorum, the one of the highest sequence."""
    best: Quorum | None = None
    for digest, members in groups.items():
        quorum = quorum_of(members, digest, threshold)
        if quorum is not None and (best is None or quorum.report.sequence > best.report.sequence):
            best = quorum
    return best


def why(rental_id: int, got: int, threshold: int, notes: dict[str, str]) -> str:
    who = f"rental {rental_id}" if rental_id >= 0 else "batch"
    return f"{who}: {got} valid signature(s), {threshold} needed ({'; '.join(f'{u}: {n}' for u, n in notes.items())})"
