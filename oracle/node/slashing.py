"""Fault reports: collect quorum-signed fault reports page by page and slash only what moves stake.

Mixed into :class:`oracle.node.aggregator.Aggregator` (it uses the aggregator's ``client``,
``node_urls``, ``peers``, ``stats`` and stagger). Per call, at most ``max_faults_per_rental``
fault ids of a rental are looked at, from a per-rental cursor (the lowest fault id not yet
decided), so one rental with thousands of faults cannot hold up the others. A slash is
simulated first (``eth_call``) and never sent when it would revert or move nothing (no stake
left to slash, or a fault kind the contract never slashes): fault spam costs the nodes no gas.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from oracle.attestation.eip712 import FaultReport, fault_report_digest
from oracle.attestation.reports import END_CHALLENGE_FAULT_ID
from oracle.chain.client import SignerSet, fault_report_tuple
from oracle.chain.errors import TransactionRevertedError
from oracle.errors import ChainError
from oracle.node.quorum import NodeSignature, Outcome, Quorum, quorum_of, reverted, verify_signed

#: Fault kinds the contract never slashes (a usage flag of the renter's workload: IDLE_POWER_BUSY).
UNSLASHABLE_KINDS = frozenset({4})
#: Outcomes after which a fault id needs no further look.
DECIDED = frozenset({"slashed", "already_settled", "not_slashable"})


class FaultSubmission:
    """The fault half of the aggregator."""

    client: Any
    node_urls: list[str]
    stats: dict[str, int]
    max_faults_per_rental: int
    fault_cursor: dict[int, int]

    def _get(self, url: str, path: str, params: dict[str, Any] | None = None) -> dict[str, Any] | str:
        raise NotImplementedError

    def _stagger(self) -> bool:
        raise NotImplementedError

    def _fault_digest(self, report: FaultReport) -> bytes:
        return fault_report_digest(report, self.client.chain_id, self.client.address)

    def collect_faults(self, rental_id: int, signer_set: SignerSet | None = None, *,
                       from_id: int = 0, limit: int | None = None) -> dict[int, Quorum]:
        """fault id -> quorum of verified signatures over one identical fault report, for the fault
        ids ``from_id .. from_id+limit-1`` (a page: nodes serve faults paged)."""
        signer_set = signer_set or self.client.signer_set()
        limit = self.max_faults_per_rental if limit is None else limit
        groups: dict[int, dict[bytes, list[tuple[FaultReport, NodeSignature]]]] = defaultdict(lambda: defaultdict(list))
        for url in self.node_urls:
            got = self._get(url, f"/v1/rentals/{rental_id}/faults", {"from_id": from_id, "limit": limit,
                                                                      "signer_set_version": signer_set.version})
            if isinstance(got, str):
                continue
            for fault in got.get("faults", []):
                signed = fault.get("signed")
                fault_id = fault.get("fault_id")
                if not signed or not isinstance(fault_id, int) or not from_id <= fault_id < from_id + limit:
                    continue  # outside the page (a node that does not page answers everything)
                checked = verify_signed(url, signed, FaultReport, self._fault_digest, signer_set)
                if isinstance(checked, str):
                    self.stats["signatures_refused"] += 1
                    continue
                report, digest, sig = checked
                groups[report.fault_id][digest].append((report, sig))
        out: dict[int, Quorum] = {}
        for fault_id, by_digest in groups.items():
            for digest, members in by_digest.items():
                quorum = quorum_of(members, digest, signer_set.threshold)
                if quorum is not None:
                    out[fault_id] = quorum
        return out

    def _slash_would_move(self, rental_id: int, quorum: Quorum) -> str | None:
        """Why this slash must not be sent (None: send it). Costs views only, never gas."""
        if int(quorum.report.kind) in UNSLASHABLE_KINDS:
            return f"fault kind {quorum.report.kind} is a usage flag, never slashed"
        market = getattr(self.client, "market", None)
        if market is not None:
            try:  # the contract reverts a slash that is invalid or would move nothing
                market.call("slash", fault_report_tuple(quorum.report), quorum.packed)
            except TransactionRevertedError as exc:
                return f"slash would revert: {exc.error_name or exc}"
        try:
            provider = self.client.get_rental(rental_id)["provider"]
            stake = self.client.stake_of(provider)
        except (ChainError, KeyError):
            return None
        if int(stake.get("active", 0)) + int(stake.get("unbonding", 0)) == 0:
            return "the provider has no stake left: the slash would move nothing"
        return None

    def submit_faults(self, rental_id: int) -> list[Outcome]:
        """Slash for the quorum-signed faults of the rental not yet slashed on chain, at most
        ``max_faults_per_rental`` fault ids from the rental's cursor per call."""
        start = self.fault_cursor.get(rental_id, 0)
        outcomes = self._slash_quorums(rental_id, sorted(self.collect_faults(rental_id, from_id=start).items()))
        # The cursor moves past every fault that is decided (slashed, already slashed, never
        # slashable); a fault still waiting for a quorum holds it.
        decided = {o.fault_id for o in outcomes if o.status in DECIDED}
        cursor = start
        while cursor in decided:
            cursor += 1
        self.fault_cursor[rental_id] = cursor
        return outcomes

    def submit_end_fault(self, rental_id: int) -> list[Outcome]:
        """Slash for the quorum-signed fault of a failed end challenge (fault id
        ``END_CHALLENGE_FAULT_ID``), if the nodes sign one and it is not slashed yet."""
        quorums = self.collect_faults(rental_id, from_id=END_CHALLENGE_FAULT_ID, limit=1)
        return self._slash_quorums(rental_id, sorted(quorums.items()))

    def _slash_quorums(self, rental_id: int, quorums: list[tuple[int, Quorum]]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        pending = []
        for fault_id, quorum in quorums:
            if int(quorum.report.kind) in UNSLASHABLE_KINDS:  # decided without any RPC
                self.stats["slash_not_sent"] += 1
                outcomes.append(Outcome(rental_id, "not_slashable", fault_id=fault_id,
                                        detail=f"fault kind {quorum.report.kind} is a usage flag, never slashed"))
            elif self.client.is_fault_settled(rental_id, fault_id):
                outcomes.append(Outcome(rental_id, "already_settled", fault_id=fault_id))
            else:
                pending.append((fault_id, quorum))
        if pending and self._stagger():
            return outcomes
        for fault_id, quorum in pending:
            if self.client.is_fault_settled(rental_id, fault_id):
                outcomes.append(Outcome(rental_id, "already_settled", fault_id=fault_id))
                continue
            refused = self._slash_would_move(rental_id, quorum)  # just before sending: earlier slashes count
            if refused is not None and "FaultAlreadySettled" in refused:
                outcomes.append(Outcome(rental_id, "already_settled", fault_id=fault_id))
                continue
            if refused is not None:
                self.stats["slash_not_sent"] += 1
                outcomes.append(Outcome(rental_id, "not_slashable", fault_id=fault_id, detail=refused))
                continue
            try:
                result = self.client.slash(quorum.report, quorum.packed)
            except TransactionRevertedError as exc:
                status = "already_settled" if exc.error_name == "ProviderStaking_FaultAlreadySettled" else "failed"
                outcomes.append(reverted(rental_id, status, exc, fault_id=fault_id))
                continue
            self.stats["faults_slashed"] += 1
            outcomes.append(Outcome(rental_id, "slashed", fault_id=fault_id, tx_hash=result.tx_hash,
                                    gas_used=result.gas_used, signers=quorum.signers))
        return outcomes


