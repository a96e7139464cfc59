"""Aggregation: collect report signatures from this node and its peers up to the on-chain
threshold, and submit settlement (``settle`` or ``settleBatch``) and fault reports (``slash``).

Answers are verified as :mod:`oracle.node.quorum` describes (a lying peer can only withhold
its signature); requests go through :class:`oracle.node.peers.Peers` (429 answers are waited
out per peer, honouring ``Retry-After``).

Target sequence: nodes are asked for their latest report; the highest sequence that at least
``threshold`` of them hold is chosen, and the others are asked for that sequence (they meter it
from the batches they hold). For an ended rental the report must not cover time after the end
(``periodEnd <= endedAt``), so the sequence is searched down to the last one that qualifies.

Scale. ``settle_batch`` (:mod:`oracle.node.batch_settlement`) takes any number of rentals: their quorum reports go into
``settleBatch`` transactions of at most ``max_reports_per_tx`` reports (the contract's and the
block's limit, and never above :data:`oracle.node.peers.MAX_REPORTS_PER_REQUEST`, what one
batch-signature request to a peer may name), each under its own batch signature.

Submission is idempotent in effect: the chain accepts only a sequence above the last settled
one, so when another node or the provider settled first, ``UsageSettlement_StaleSequence`` (or a
skipped batch entry) is reported as ``already_settled``, not as a failure. A ``submit_delay_s``
staggers nodes (by their rank in the signer set, set per round by the settlement loop): a node
that found a quorum waits its stagger once per round, then re-reads the rentals on chain and
sends only what nobody ranked before it has settled meanwhile.

Faults: :mod:`oracle.node.slashing` (bounded per rental and call; a slash that would move
nothing is never sent).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any, Sequence

import httpx

from oracle.attestation.eip712 import UsageReport, usage_report_digest
from oracle.chain import settlements
from oracle.chain.client import MarketClient, SignerSet
from oracle.chain.errors import TransactionRevertedError
from oracle.chain.tx import TxResult
from oracle.errors import ChainError
from oracle.node.batch_settlement import BatchSettlement
from oracle.node.peers import MAX_REPORTS_PER_REQUEST, Peers
from oracle.node.settle_policy import DEFAULT_MAX_REPORTS_PER_TX
from oracle.node.slashing import FaultSubmission
from oracle.node.quorum import (
    ACTIVE,
    ENDED,
    NodeSignature,
    Outcome,
    Quorum,
    QuorumNotReached,
    best_quorum,
    reverted,
    verify_signed,
    why,
)

log = logging.getLogger(__name__)

__all__ = ["Aggregator", "NodeSignature", "Outcome", "Quorum", "QuorumNotReached"]


class Aggregator(BatchSettlement, FaultSubmission):
    """Collects signatures from ``node_urls`` (this node's own URL among them) and submits.

    ``client`` is the submitting account's :class:`MarketClient` (the node's key pays gas).
    """

    def __init__(
        self,
        client: MarketClient,
        node_urls: Sequence[str],
        *,
        timeout_s: float = 5.0,
        http: httpx.Client | None = None,
        auth: httpx.Auth | None = None,
        max_reports_per_tx: int = DEFAULT_MAX_REPORTS_PER_TX,
        max_faults_per_rental: int = 16,
    ) -> None:
        self.client = client
        # settle/settle_batch go here: the market client, or oracle.node.submit.RegistrySubmitter
        self.submitter: Any = client
        self.peers = Peers(node_urls, http=http, timeout_s=timeout_s, auth=auth)
        self.node_urls = self.peers.urls
        self.http = self.peers.http
        self.stats: dict[str, int] = self.peers.stats
        self.max_reports_per_tx = max(1, min(max_reports_per_tx, MAX_REPORTS_PER_REQUEST))
        self.max_faults_per_rental = max(1, max_faults_per_rental)
        self.fault_cursor: dict[int, int] = {}  # rental id -> lowest fault id not known settled
        # Wait between finding a quorum and sending it (set per round by SettlementLoop from this
        # node's rank); ``stop`` cuts the wait (and any Retry-After wait) short at shutdown.
        self.submit_delay_s = 0.0
        # Within a settleBatch round every rental's nodes are asked from the same first node (it
        # moves every round: the load spreads), so the nodes that signed a chunk's reports are
        # the same for all of them and can sign its batch.
        self._first_peer: int | None = None
        self._rounds = 0

    @property
    def stop(self):
        return self.peers.stop

    @stop.setter
    def stop(self, event) -> None:
        self.peers.stop = event

    def _stagger(self) -> bool:
        """Wait ``submit_delay_s`` before a submission; True when stopped meanwhile (do not send)."""
        return self.submit_delay_s > 0 and self.stop.wait(self.submit_delay_s)

    def close(self) -> None:
        self.peers.close()

    def _get(self, url: str, path: str, params: dict[str, Any] | None = None) -> dict[str, Any] | str:
        return self.peers.get(url, path, params)

    def _post(self, url: str, path: str, body: dict[str, Any]) -> dict[str, Any] | str:
        return self.peers.post(url, path, body)

    def tx_cap(self) -> int:
        """Reports per ``settleBatch``: ours, lowered to the contract's cap when it states one."""
        cap = self.max_reports_per_tx
        market = getattr(self.client, "market", None)
        for name in ("MAX_SETTLE_BATCH", "maxSettleBatch", "MAX_BATCH_REPORTS"):
            if market is not None and market.has_function(name):
                try:
                    cap = min(cap, int(market.call(name)))
                except ChainError:
                    pass
                break
        return max(1, cap)

    # ------------------------------------------------------------------ usage reports
    def _usage_digest(self, report: UsageReport) -> bytes:
        return usage_report_digest(report, self.client.chain_id, self.client.address)

    def _ask_report(self, url: str, rental_id: int, sequence: int | None, signer_set: SignerSet,
                    notes: dict[str, str]) -> tuple[UsageReport, bytes, NodeSignature] | None:
        params = {"signer_set_version": signer_set.version}
        if sequence is not None:
            params["sequence"] = sequence
        got = self._get(url, f"/v1/rentals/{rental_id}/report", params)
        if isinstance(got, str):
            notes[url] = got
            return None
        checked = verify_signed(url, got, UsageReport, self._usage_digest, signer_set)
        if isinstance(checked, str):
            notes[url] = "refused: " + checked
            self.stats["signatures_refused"] += 1
            return None
        return checked

    def collect_usage(
        self,
        rental_id: int,
        *,
        sequence: int | None = None,
        max_period_end: int | None = None,
        signer_set: SignerSet | None = None,
        notes: dict[str, str] | None = None,
    ) -> Quorum:
        """A threshold of verified signatures over one identical usage report of ``rental_id``.

        Nodes are asked one by one (starting at a node that depends on the rental, so the load
        spreads over them) until ``threshold`` have answered: a round costs each rental
        ``threshold`` requests, not one per node. Nodes not asked yet are asked only when the
        answers do not agree. Raises :class:`QuorumNotReached` (with each node's answer in the
        message) otherwise.
        """
        signer_set = signer_set or self.client.signer_set()
        threshold = signer_set.threshold
        notes = {} if notes is None else notes
        first = (rental_id if self._first_peer is None else self._first_peer) % len(self.node_urls)
        waiting = self.node_urls[first:] + self.node_urls[:first]
        answers: dict[str, tuple[UsageReport, bytes, NodeSignature]] = {}
        while waiting and len(answers) < threshold:
            url = waiting.pop(0)
            checked = self._ask_report(url, rental_id, sequence, signer_set, notes)
            if checked is not None:
                answers[url] = checked
        if len(answers) < threshold:
            raise QuorumNotReached(why(rental_id, len(answers), threshold, notes))

        if sequence is None:
            held = sorted((a[0].sequence for a in answers.values()), reverse=True)
            target = held[threshold - 1]
        else:
            target = sequence
        if max_period_end is not None:
            target = self._last_sequence_before(rental_id, answers, target, max_period_end)
            if target is None:
                raise QuorumNotReached(f"rental {rental_id}: no report ends by {max_period_end}")

        groups: dict[bytes, list[tuple[UsageReport, NodeSignature]]] = defaultdict(list)
        asked = list(answers.items())
        while True:
            for url, answer in asked:
                if answer is None or answer[0].sequence != target:
                    answer = self._ask_report(url, rental_id, target, signer_set, notes)
                    if answer is None:
                        continue
                    if answer[0].sequence != target:
                        notes[url] = f"answered sequence {answer[0].sequence}, asked {target}"
                        continue
                report, digest, sig = answer
                groups[digest].append((report, sig))
                notes[url] = f"signed sequence {target} (0x{digest.hex()[:12]}..)"
            quorum = best_quorum(groups, threshold)
            if quorum is not None:
                return quorum
            if not waiting:  # every node asked: they do not agree
                raise QuorumNotReached(
                    why(rental_id, max((len(v) for v in groups.values()), default=0), threshold, notes)
                    + f"; {len(groups)} distinct digest(s) for sequence {target}"
                )
            asked = [(waiting.pop(0), None)]

    def _last_sequence_before(self, rental_id: int, answers: dict[str, Any], high: int,
                              max_period_end: int) -> int | None:
        """Largest sequence <= high whose report ends by ``max_period_end`` (binary search on one node)."""
        for report, _, _ in answers.values():  # the answers may already hold ``high``: no request
            if report.sequence == high and report.period_end <= max_period_end:
                return high
        url = next(iter(answers))
        path = f"/v1/rentals/{rental_id}/report"
        version = answers[url][0].signer_set_version

        def period_end(seq: int) -> int | None:
            got = self._get(url, path, {"sequence": seq, "signer_set_version": version})
            if isinstance(got, str):
                return None
            return int(got["report"]["period_end"])

        end_high = period_end(high)
        if end_high is not None and end_high <= max_period_end:
            return high
        lo, hi, best = 1, high - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            end = period_end(mid)
            if end is not None and end <= max_period_end:
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        return best

    def max_period_end_now(self) -> int | None:
        """Latest ``periodEnd`` the contract accepts for an Active rental now (reports may not end
        after the block time): the time the next block will carry, from the chain (its pending
        block: on a chain that mines only on transactions the latest block can be much older than
        now; a node's own clock may run ahead of the chain's, and the gas estimate runs against
        the pending block). Without it, the later of the latest block's time and this node's
        clock. Read once per round; None when the client cannot tell (no bound)."""
        upcoming = getattr(self.client, "next_block_timestamp", None)
        if upcoming is not None:
            try:
                return int(upcoming())
            except ChainError:
                pass
        latest = getattr(self.client, "latest_block_timestamp", None)
        if latest is None:
            return None
        try:
            return max(int(latest()), int(time.time()))
        except ChainError:
            return None

    def _candidate(self, rental_id: int, signer_set: SignerSet,
                   notes: dict[str, str] | None = None, active_end: int | None = None) -> Quorum | Outcome:
        """The rental's new quorum report, or the outcome saying why there is none."""
        rental = self.client.get_rental(rental_id)
        last = int(rental["sequence"])
        settled_at = int(rental.get("lastSettledAt", 0) or 0) or None
        if rental["status"] not in (ACTIVE, ENDED):
            return Outcome(rental_id, "not_settleable", chain_sequence=last, chain_settled_at=settled_at,
                           detail=f"rental is {rental['statusName']}")
        max_end = int(rental["endedAt"]) if rental["status"] == ENDED else active_end
        try:
            quorum = self.collect_usage(rental_id, max_period_end=max_end, signer_set=signer_set, notes=notes)
        except QuorumNotReached as exc:
            self.stats["no_quorum"] += 1
            return Outcome(rental_id, "no_quorum", chain_sequence=last, chain_settled_at=settled_at,
                           detail=str(exc), notes=dict(notes or {}))
        if quorum.report.sequence <= last:
            return Outcome(rental_id, "nothing_new", sequence=quorum.report.sequence, chain_sequence=last,
                           chain_settled_at=settled_at, detail=f"sequence {last} already settled",
                           notes=dict(notes or {}))
        return quorum

    def _settled_meanwhile(self, quorum: Quorum) -> Outcome | None:
        """``already_settled`` when a node ranked before this one settled the report during the stagger."""
        rental_id = quorum.report.rental_id
        rental = self.client.get_rental(rental_id)
        last = int(rental["sequence"])
        if quorum.report.sequence > last:
            return None
        self.stats["already_settled"] += 1
        return Outcome(rental_id, "already_settled", quorum.report.sequence, chain_sequence=last,
                       chain_settled_at=int(rental.get("lastSettledAt", 0) or 0) or None,
                       detail=f"sequence {last} settled by another submitter")

    def settle_rental(self, rental_id: int) -> Outcome:
        """Collect a quorum for the rental's newest report and ``settle`` it if it is new."""
        notes: dict[str, str] = {}
        found = self._candidate(rental_id, self.client.signer_set(), notes, self.max_period_end_now())
        if isinstance(found, Outcome):
            return found
        quorum, sequence = found, found.report.sequence
        if self.submit_delay_s > 0:
            if self._stagger():
                return Outcome(rental_id, "failed", sequence=sequence, detail="stopped before sending")
            meanwhile = self._settled_meanwhile(quorum)
            if meanwhile is not None:
                meanwhile.notes = notes
                return meanwhile
        try:
            # A stale report reverts at the pre-flight gas estimate (TransactionSender.send), before
            # anything is signed or sent: another node settling first costs this one no gas.
            result = self.submitter.settle(quorum.report, quorum.packed)
        except TransactionRevertedError as exc:
            if exc.error_name == "UsageSettlement_StaleSequence":
                self.stats["already_settled"] += 1
                return reverted(rental_id, "already_settled", exc, sequence=sequence, notes=notes)
            self.stats["submit_failed"] += 1
            return reverted(rental_id, "failed", exc, sequence=sequence, notes=notes)
        self.stats["settled"] += 1
        return _settled(rental_id, sequence, result, quorum.signers, notes)

    def _settle_one(self, q: Quorum) -> Outcome:
        rental_id, sequence = q.report.rental_id, q.report.sequence
        try:
            result = self.submitter.settle(q.report, q.packed)
        except TransactionRevertedError as exc:
            status = "already_settled" if exc.error_name == "UsageSettlement_StaleSequence" else "failed"
            self.stats[status if status == "already_settled" else "submit_failed"] += 1
            return reverted(rental_id, status, exc, sequence=sequence)
        self.stats["settled"] += 1
        return _settled(rental_id, sequence, result, q.signers, {})

def _settled(rental_id: int, sequence: int, result: TxResult, signers: tuple[str, ...], notes: dict[str, str]) -> Outcome:
    payment = sum(s.payment for s in settlements.from_events(result.events))
    return Outcome(rental_id, "settled", sequence=sequence, chain_sequence=sequence, payment=payment,
                   tx_hash=result.tx_hash, gas_used=result.gas_used, signers=signers, notes=notes)
