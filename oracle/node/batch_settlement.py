"""Settlement of many rentals at once: their quorum reports in ``settleBatch`` transactions of at
most ``tx_cap()`` reports, each under a threshold of node signatures over the batch digest.

:class:`BatchSettlement` is a part of :class:`~oracle.node.aggregator.Aggregator` (it uses the
aggregator's peers, candidates, stagger and single-report path); see that module for the rules.
"""

from __future__ import annotations

from typing import Any, Iterable

from oracle.attestation.eip712 import usage_batch_digest
from oracle.chain import settlements
from oracle.chain.client import SignerSet, recover
from oracle.chain.errors import TransactionRevertedError
from oracle.node.quorum import NodeSignature, Outcome, Quorum, reverted, why


class BatchSettlement:
    """``settle_batch`` and the batch-signature round (mixed into Aggregator)."""

    def settle_batch(self, rental_ids: Iterable[int]) -> list[Outcome]:
        """Settle any number of rentals in ``settleBatch`` transactions of at most :meth:`tx_cap`
        reports, each under one quorum signature of its batch.

        Each rental's report is agreed first (as for ``settle``); then every node is asked to
        sign the ``UsageReportBatch`` of exactly the reports of one transaction, in order.
        Rentals without a new quorum report are left out (their outcome says why). The stagger
        is waited once, before the first transaction.
        """
        signer_set = self.client.signer_set()
        cap = self.tx_cap()
        active_end = self.max_period_end_now()
        self._rounds += 1
        self._first_peer = self._rounds
        try:
            return self._settle_batch(rental_ids, signer_set, cap, active_end)
        finally:
            self._first_peer = None

    def _settle_batch(self, rental_ids: Iterable[int], signer_set: SignerSet, cap: int,
                      active_end: int | None) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        chosen: list[Quorum] = []
        staggered = False
        for rental_id in rental_ids:
            if self.stop.is_set():
                outcomes[rental_id] = Outcome(rental_id, "deferred", detail="stopped")
                continue
            found = self._candidate(rental_id, signer_set, None, active_end)
            if isinstance(found, Outcome):
                outcomes[rental_id] = found
                continue
            chosen.append(found)
            if len(chosen) >= cap:
                staggered = self._submit_chunk(chosen, signer_set, outcomes, staggered)
                chosen = []
        if chosen:
            self._submit_chunk(chosen, signer_set, outcomes, staggered)
        return list(outcomes.values())

    def _submit_chunk(self, chosen: list[Quorum], signer_set: SignerSet, outcomes: dict[int, Outcome],
                      staggered: bool) -> bool:
        """One batch signature and one ``settleBatch`` for ``chosen``; True once the stagger was waited."""
        if self.submit_delay_s > 0:
            if not staggered and self._stagger():
                for q in chosen:
                    outcomes[q.report.rental_id] = Outcome(q.report.rental_id, "deferred", q.report.sequence,
                                                           detail="stopped before sending")
                return True
            staggered = True
            still = []
            for q in chosen:  # drop what a node ranked before this one settled meanwhile
                meanwhile = self._settled_meanwhile(q)
                if meanwhile is None:
                    still.append(q)
                else:
                    outcomes[q.report.rental_id] = meanwhile
            chosen = still
        if not chosen:
            return staggered
        if len(chosen) == 1:  # one report: settle it alone (cheaper than a batch signature round)
            q = chosen[0]
            outcomes[q.report.rental_id] = self._settle_one(q)
            return staggered
        reports = [q.report for q in chosen]
        batch_digest = usage_batch_digest(reports, self.client.chain_id, self.client.address)
        ordered, notes = self._batch_signatures(chosen, batch_digest, signer_set)
        if ordered is None:
            detail = why(-1, sum(n == "signed batch" for n in notes.values()), signer_set.threshold, notes)
            for q in chosen:
                outcomes[q.report.rental_id] = Outcome(q.report.rental_id, "no_quorum", q.report.sequence,
                                                       detail=detail, notes=notes)
            return staggered
        try:
            result = self.submitter.settle_batch(reports, b"".join(s.signature for s in ordered))
        except TransactionRevertedError as exc:
            status = "already_settled" if exc.error_name == "UsageSettlement_NothingSettled" else "failed"
            for i, q in enumerate(chosen):  # a mined revert's gas is counted once, on the first rental
                outcome = reverted(q.report.rental_id, status, exc, sequence=q.report.sequence, notes=notes)
                if i:
                    outcome.gas_used = None
                outcomes[q.report.rental_id] = outcome
            return staggered
        # UsageBatchSettled (the batch's fast pass) and UsageSettled (Ended rentals' final reports).
        paid: dict[int, int] = {}
        for settlement in settlements.from_events(result.events):
            paid[settlement.rental_id] = paid.get(settlement.rental_id, 0) + settlement.payment
        skipped = {int(ev["rentalId"]) for ev in result.events.get("UsageReportSkipped", [])}
        signers = tuple(s.signer for s in ordered)
        for q in chosen:
            rid = q.report.rental_id
            if rid in skipped:
                outcomes[rid] = Outcome(rid, "already_settled", q.report.sequence, tx_hash=result.tx_hash,
                                        notes=notes)
            else:
                outcomes[rid] = Outcome(rid, "settled", q.report.sequence, chain_sequence=q.report.sequence,
                                        payment=paid.get(rid, 0), tx_hash=result.tx_hash,
                                        gas_used=result.gas_used, signers=signers, notes=notes)
        self.stats["batches_settled"] += 1
        return staggered

    def _batch_signatures(self, chosen: list[Quorum], batch_digest: bytes,
                          signer_set: SignerSet) -> tuple[list[NodeSignature] | None, dict[str, str]]:
        """A threshold of verified signatures over the batch digest (ascending), or None.

        Nodes sign only reports they recorded themselves. The nodes that made the chunk's
        quorums are asked first; if fewer than ``threshold`` sign, each node that refused for a
        report it does not hold is asked for the chunk's reports (it meters and records them)
        and then for the batch signature again.
        """
        body = {"reports": [{"rental_id": q.report.rental_id, "sequence": q.report.sequence,
                             "digest": "0x" + q.digest.hex()} for q in chosen]}
        by_signer: dict[str, NodeSignature] = {}
        notes: dict[str, str] = {}
        quorum_urls = {s.url for q in chosen for s in q.signatures}
        order = sorted(self.node_urls, key=lambda u: u not in quorum_urls)
        for url in order:
            if len(by_signer) >= signer_set.threshold:
                break
            self._ask_batch_signature(url, body, batch_digest, signer_set, by_signer, notes)
        for url in order:
            if len(by_signer) >= signer_set.threshold:
                break
            if notes.get(url, "").startswith(("HTTP 404", "HTTP 409")):  # it lacks some of the reports
                for q in chosen:
                    self._ask_report(url, q.report.rental_id, q.report.sequence, signer_set, {})
                self._ask_batch_signature(url, body, batch_digest, signer_set, by_signer, notes)
        if len(by_signer) < signer_set.threshold:
            return None, notes
        return sorted(by_signer.values(), key=lambda s: int(s.signer, 16))[: signer_set.threshold], notes

    def _ask_batch_signature(self, url: str, body: dict[str, Any], batch_digest: bytes, signer_set: SignerSet,
                             by_signer: dict[str, NodeSignature], notes: dict[str, str]) -> None:
        got = self._post(url, "/v1/batch-signatures", body)
        if isinstance(got, str):
            notes[url] = got
            return
        try:
            signature = bytes.fromhex(got["signature"].removeprefix("0x"))
            signer = recover(batch_digest, signature)
        except Exception as exc:
            notes[url] = f"refused: bad batch signature ({exc})"
            return
        if str(got.get("digest", "")).lower() != "0x" + batch_digest.hex():
            notes[url] = "refused: batch digest differs"
            return
        if signer not in signer_set.signers or signer.lower() != str(got.get("signer", signer)).lower():
            notes[url] = f"refused: {signer} not in signer set or not the claimed signer"
            return
        by_signer.setdefault(signer, NodeSignature(url, signer, signature))
        notes[url] = "signed batch"
