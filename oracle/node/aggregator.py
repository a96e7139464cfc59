"""Aggregation: collect report signatures from this node and its peers up to the on-chain
threshold, and submit settlement (``settle`` or ``settleBatch``) and fault reports (``slash``).

Every node's answer is checked before it counts, so a faulty or lying peer can only withhold
its signature, never spoil a submission:

- the report's fields are rebuilt into :class:`oracle.attestation.eip712.UsageReport` and the
  digest recomputed locally for this chain and market (a peer's claimed digest is not trusted);
- the signature must recover to the signer the peer names, and that signer must be in the
  current on-chain signer set; the report must name the current ``signerSetVersion``;
- signatures are grouped by digest; only a group of ``threshold`` distinct signers of one
  identical report is submitted, packed in strictly ascending signer order (the contract's rule).

Target sequence: nodes are asked for their latest report; the highest sequence that at least
``threshold`` of them hold is chosen, and the others are asked for that sequence (they meter it
from the batches they hold). For an ended rental the report must not cover time after the end
(``periodEnd <= endedAt``), so the sequence is searched down to the last one that qualifies.

Submission is idempotent in effect: the chain accepts only a sequence above the last settled
one, so when another node or the provider settled first, ``UsageSettlement_StaleSequence`` (or a
skipped batch entry) is reported as ``already_settled``, not as a failure.

``SettlementLoop`` runs this periodically in a thread for the rentals a callable names (the
active rentals of the node's registry, fed by :class:`oracle.chain.events.EventFollower`).
A ``submit_delay_s`` staggers nodes (by their rank in the signer set) so that usually only one
of them pays gas for a given report: a node that found a quorum waits its stagger, then re-reads
the rental on chain and sends only if nobody ranked before it has settled the report meanwhile
(``already_settled``, no gas); rounds of different nodes are not aligned, so a delay before the
round would not separate them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import httpx
from web3 import Web3

from oracle.attestation.eip712 import (
    FaultReport,
    UsageReport,
    fault_report_digest,
    usage_batch_digest,
    usage_report_digest,
)
from oracle.chain import settlements
from oracle.chain.background import BackgroundLoop
from oracle.chain.client import MarketClient, SignerSet, recover
from oracle.chain.events import CursorStore, EventFollower, RentalRegistryFeed
from oracle.chain.errors import TransactionRevertedError
from oracle.chain.tx import TxResult
from oracle.errors import ChainError, GpurentError
from oracle.redact import redact

log = logging.getLogger(__name__)

ACTIVE, ENDED = 2, 3  # RentalStatus


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
    status: str  # settled | already_settled | nothing_new | no_quorum | not_settleable | failed | slashed
    sequence: int | None = None
    chain_sequence: int | None = None  # the rental's last settled sequence on chain, as last read (or settled)
    fault_id: int | None = None
    payment: int = 0
    tx_hash: str | None = None
    gas_used: int | None = None
    signers: tuple[str, ...] = ()
    detail: str = ""
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def burned_gas(self) -> bool:
        """A transaction of ours was mined and reverted (gas spent for nothing)."""
        return self.status in ("already_settled", "failed") and self.tx_hash is not None and self.gas_used is not None


def _reverted(rental_id: int, status: str, exc: TransactionRevertedError, **fields: Any) -> Outcome:
    """Outcome of a revert: at the pre-flight estimate (no gas spent) or in a mined transaction."""
    gas = int(exc.receipt["gasUsed"]) if exc.tx_hash and exc.receipt is not None else None
    return Outcome(rental_id, status, detail=str(exc), tx_hash=exc.tx_hash, gas_used=gas, **fields)


def _report_from_fields(cls: type, data: dict[str, Any]) -> Any:
    values = {}
    for name in cls.__dataclass_fields__:
        value = data[name]
        if isinstance(value, str) and value.startswith("0x"):
            value = bytes.fromhex(value[2:])
        values[name] = value
    return cls(**values)


class Aggregator:
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
    ) -> None:
        if not node_urls:
            raise ValueError("no node URLs to collect signatures from")
        self.client = client
        self.node_urls = [u.rstrip("/") for u in node_urls]
        self.http = http or httpx.Client(timeout=timeout_s)
        self.stats: dict[str, int] = defaultdict(int)
        # Wait between finding a quorum and sending it (set per round by SettlementLoop from this
        # node's rank); ``stop`` cuts the wait short at shutdown.
        self.submit_delay_s = 0.0
        self.stop = threading.Event()

    def _stagger(self) -> bool:
        """Wait ``submit_delay_s`` before a submission; True when stopped meanwhile (do not send)."""
        return self.submit_delay_s > 0 and self.stop.wait(self.submit_delay_s)

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------ HTTP
    def _get(self, url: str, path: str, params: dict[str, Any] | None = None) -> dict[str, Any] | str:
        return self._request("GET", url + path, params=params)

    def _post(self, url: str, path: str, body: dict[str, Any]) -> dict[str, Any] | str:
        return self._request("POST", url + path, json=body)

    def _request(self, method: str, url: str, **kwargs: Any) -> dict[str, Any] | str:
        """A peer's JSON answer, or why there is none (a string: unreachable, or its HTTP refusal)."""
        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            self.stats["peer_unreachable"] += 1
            return f"unreachable ({type(exc).__name__})"
        if response.status_code != 200:
            return f"HTTP {response.status_code}: {_detail(response)}"
        return response.json()

    # ------------------------------------------------------------------ verification
    def _verified(
        self, url: str, signed: dict[str, Any], cls: type, digest_of: Callable[[Any], bytes], signer_set: SignerSet
    ) -> tuple[Any, bytes, NodeSignature] | str:
        """(report, locally computed digest, signature) of one node's answer, or why it is refused."""
        try:
            report = _report_from_fields(cls, signed["report"])
            signature = bytes.fromhex(signed["signature"].removeprefix("0x"))
            claimed = Web3.to_checksum_address(signed["signer"])
        except (KeyError, TypeError, ValueError, GpurentError) as exc:
            return f"malformed answer ({exc})"
        if report.signer_set_version != signer_set.version:
            return f"signed for signer set v{report.signer_set_version}, chain has v{signer_set.version}"
        digest = digest_of(report)
        if signed.get("digest") and signed["digest"].lower() != "0x" + digest.hex():
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

    @staticmethod
    def _pick(groups: dict[bytes, list[tuple[Any, NodeSignature]]], threshold: int) -> Quorum | None:
        best: Quorum | None = None
        for digest, members in groups.items():
            by_signer: dict[str, NodeSignature] = {}
            for _, sig in members:
                by_signer.setdefault(sig.signer, sig)
            if len(by_signer) < threshold:
                continue
            ordered = sorted(by_signer.values(), key=lambda s: int(s.signer, 16))[:threshold]
            quorum = Quorum(members[0][0], digest, tuple(ordered))
            if best is None or quorum.report.sequence > best.report.sequence:
                best = quorum
        return best

    # ------------------------------------------------------------------ usage reports
    def _usage_digest(self, report: UsageReport) -> bytes:
        return usage_report_digest(report, self.client.chain_id, self.client.address)

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

        Raises :class:`QuorumNotReached` (with each node's answer in the message) otherwise.
        """
        signer_set = signer_set or self.client.signer_set()
        threshold = signer_set.threshold
        notes = {} if notes is None else notes
        path = f"/v1/rentals/{rental_id}/report"
        answers: dict[str, tuple[UsageReport, bytes, NodeSignature]] = {}
        params = {} if sequence is None else {"sequence": sequence}
        for url in self.node_urls:
            got = self._get(url, path, params)
            if isinstance(got, str):
                notes[url] = got
                continue
            checked = self._verified(url, got, UsageReport, self._usage_digest, signer_set)
            if isinstance(checked, str):
                notes[url] = "refused: " + checked
                self.stats["signatures_refused"] += 1
                continue
            answers[url] = checked
        if len(answers) < threshold:
            raise QuorumNotReached(_why(rental_id, len(answers), threshold, notes))

        if sequence is None:
            held = sorted((a[0].sequence for a in answers.values()), reverse=True)
            target = held[threshold - 1]
        else:
            target = sequence
        if max_period_end is not None:
            target = self._last_sequence_before(rental_id, answers, target, max_period_end, signer_set)
            if target is None:
                raise QuorumNotReached(f"rental {rental_id}: no report ends by {max_period_end}")

        groups: dict[bytes, list[tuple[UsageReport, NodeSignature]]] = defaultdict(list)
        for url, (report, digest, sig) in answers.items():
            if report.sequence != target:
                got = self._get(url, path, {"sequence": target})
                if isinstance(got, str):
                    notes[url] = got
                    continue
                checked = self._verified(url, got, UsageReport, self._usage_digest, signer_set)
                if isinstance(checked, str):
                    notes[url] = "refused: " + checked
                    continue
                report, digest, sig = checked
                if report.sequence != target:
                    notes[url] = f"answered sequence {report.sequence}, asked {target}"
                    continue
            groups[digest].append((report, sig))
            notes[url] = f"signed sequence {target} (0x{digest.hex()[:12]}..)"
        quorum = self._pick(groups, threshold)
        if quorum is None:
            raise QuorumNotReached(
                _why(rental_id, max((len(v) for v in groups.values()), default=0), threshold, notes)
                + f"; {len(groups)} distinct digest(s) for sequence {target}"
            )
        return quorum

    def _last_sequence_before(
        self, rental_id: int, answers: dict[str, Any], high: int, max_period_end: int, signer_set: SignerSet
    ) -> int | None:
        """Largest sequence <= high whose report ends by ``max_period_end`` (binary search on one node)."""
        url = next(iter(answers))
        path = f"/v1/rentals/{rental_id}/report"

        def period_end(seq: int) -> int | None:
            got = self._get(url, path, {"sequence": seq})
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

    def settle_rental(self, rental_id: int) -> Outcome:
        """Collect a quorum for the rental's newest report and ``settle`` it if it is new."""
        rental = self.client.get_rental(rental_id)
        last = int(rental["sequence"])
        if rental["status"] not in (ACTIVE, ENDED):
            return Outcome(rental_id, "not_settleable", chain_sequence=last, detail=f"rental is {rental['statusName']}")
        notes: dict[str, str] = {}
        max_end = int(rental["endedAt"]) if rental["status"] == ENDED else None
        try:
            quorum = self.collect_usage(rental_id, max_period_end=max_end, notes=notes)
        except QuorumNotReached as exc:
            self.stats["no_quorum"] += 1
            return Outcome(rental_id, "no_quorum", chain_sequence=last, detail=str(exc), notes=notes)
        sequence = quorum.report.sequence
        if sequence <= last:
            return Outcome(rental_id, "nothing_new", sequence=sequence, chain_sequence=last,
                           detail=f"sequence {last} already settled", notes=notes)
        if self.submit_delay_s > 0:
            if self._stagger():
                return Outcome(rental_id, "failed", sequence=sequence, chain_sequence=last,
                               detail="stopped before sending")
            last = int(self.client.get_rental(rental_id)["sequence"])
            if sequence <= last:  # a node ranked before this one settled it during the stagger
                self.stats["already_settled"] += 1
                return Outcome(rental_id, "already_settled", sequence=sequence, chain_sequence=last,
                               detail=f"sequence {last} settled by another submitter", notes=notes)
        try:
            # A stale report reverts at the pre-flight gas estimate (TransactionSender.send), before
            # anything is signed or sent: another node settling first costs this one no gas.
            result = self.client.settle(quorum.report, quorum.packed)
        except TransactionRevertedError as exc:
            if exc.error_name == "UsageSettlement_StaleSequence":
                self.stats["already_settled"] += 1
                return _reverted(rental_id, "already_settled", exc, sequence=sequence, chain_sequence=last,
                                 notes=notes)
            self.stats["submit_failed"] += 1
            return _reverted(rental_id, "failed", exc, sequence=sequence, chain_sequence=last, notes=notes)
        self.stats["settled"] += 1
        return _settled(rental_id, sequence, result, quorum.signers, notes)

    def settle_batch(self, rental_ids: Iterable[int]) -> list[Outcome]:
        """Settle many rentals in one ``settleBatch`` under one quorum signature of the batch.

        Each rental's report is agreed first (as for ``settle``); then every node is asked to
        sign the ``UsageReportBatch`` of exactly those reports, in order. Rentals without a new
        quorum report are left out (their outcome says why).
        """
        signer_set = self.client.signer_set()
        outcomes: dict[int, Outcome] = {}
        chosen: list[Quorum] = []
        for rental_id in rental_ids:
            rental = self.client.get_rental(rental_id)
            last = int(rental["sequence"])
            if rental["status"] not in (ACTIVE, ENDED):
                outcomes[rental_id] = Outcome(rental_id, "not_settleable", chain_sequence=last,
                                              detail=f"rental is {rental['statusName']}")
                continue
            max_end = int(rental["endedAt"]) if rental["status"] == ENDED else None
            try:
                quorum = self.collect_usage(rental_id, max_period_end=max_end, signer_set=signer_set)
            except QuorumNotReached as exc:
                outcomes[rental_id] = Outcome(rental_id, "no_quorum", chain_sequence=last, detail=str(exc))
                continue
            if quorum.report.sequence <= last:
                outcomes[rental_id] = Outcome(rental_id, "nothing_new", sequence=quorum.report.sequence,
                                              chain_sequence=last)
                continue
            chosen.append(quorum)
        if chosen and self.submit_delay_s > 0:
            if self._stagger():
                return list(outcomes.values())
            still = []
            for q in chosen:  # drop what a node ranked before this one settled during the stagger
                last = int(self.client.get_rental(q.report.rental_id)["sequence"])
                if q.report.sequence <= last:
                    outcomes[q.report.rental_id] = Outcome(q.report.rental_id, "already_settled", q.report.sequence,
                                                           chain_sequence=last,
                                                           detail=f"sequence {last} settled by another submitter")
                else:
                    still.append(q)
            chosen = still
        if not chosen:
            return list(outcomes.values())

        reports = [q.report for q in chosen]
        batch_digest = usage_batch_digest(reports, self.client.chain_id, self.client.address)
        body = {"reports": [{"rental_id": q.report.rental_id, "sequence": q.report.sequence,
                             "digest": "0x" + q.digest.hex()} for q in chosen]}
        by_signer: dict[str, NodeSignature] = {}
        notes: dict[str, str] = {}
        for url in self.node_urls:
            got = self._post(url, "/v1/batch-signatures", body)
            if isinstance(got, str):
                notes[url] = got
                continue
            try:
                signature = bytes.fromhex(got["signature"].removeprefix("0x"))
                signer = recover(batch_digest, signature)
            except Exception as exc:
                notes[url] = f"refused: bad batch signature ({exc})"
                continue
            if got.get("digest", "").lower() != "0x" + batch_digest.hex():
                notes[url] = "refused: batch digest differs"
                continue
            if signer not in signer_set.signers or signer != Web3.to_checksum_address(got.get("signer", signer)):
                notes[url] = f"refused: {signer} not in signer set or not the claimed signer"
                continue
            by_signer.setdefault(signer, NodeSignature(url, signer, signature))
            notes[url] = "signed batch"
        if len(by_signer) < signer_set.threshold:
            detail = _why(-1, len(by_signer), signer_set.threshold, notes)
            for q in chosen:
                outcomes[q.report.rental_id] = Outcome(q.report.rental_id, "no_quorum", q.report.sequence,
                                                       detail=detail, notes=notes)
            return list(outcomes.values())
        ordered = sorted(by_signer.values(), key=lambda s: int(s.signer, 16))[: signer_set.threshold]
        try:
            result = self.client.settle_batch(reports, b"".join(s.signature for s in ordered))
        except TransactionRevertedError as exc:
            status = "already_settled" if exc.error_name == "UsageSettlement_NothingSettled" else "failed"
            for i, q in enumerate(chosen):  # a mined revert's gas is counted once, on the first rental
                outcome = _reverted(q.report.rental_id, status, exc, sequence=q.report.sequence, notes=notes)
                if i:
                    outcome.gas_used = None
                outcomes[q.report.rental_id] = outcome
            return list(outcomes.values())
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
        return list(outcomes.values())

    # ------------------------------------------------------------------ fault reports
    def _fault_digest(self, report: FaultReport) -> bytes:
        return fault_report_digest(report, self.client.chain_id, self.client.address)

    def collect_faults(self, rental_id: int, signer_set: SignerSet | None = None) -> dict[int, Quorum]:
        """fault id -> quorum of verified signatures over one identical fault report."""
        signer_set = signer_set or self.client.signer_set()
        groups: dict[int, dict[bytes, list[tuple[FaultReport, NodeSignature]]]] = defaultdict(lambda: defaultdict(list))
        for url in self.node_urls:
            got = self._get(url, f"/v1/rentals/{rental_id}/faults")
            if isinstance(got, str):
                continue
            for fault in got.get("faults", []):
                signed = fault.get("signed")
                if not signed:
                    continue
                checked = self._verified(url, signed, FaultReport, self._fault_digest, signer_set)
                if isinstance(checked, str):
                    self.stats["signatures_refused"] += 1
                    continue
                report, digest, sig = checked
                groups[report.fault_id][digest].append((report, sig))
        out: dict[int, Quorum] = {}
        for fault_id, by_digest in groups.items():
            best = None
            for digest, members in by_digest.items():
                distinct: dict[str, NodeSignature] = {}
                for _, sig in members:
                    distinct.setdefault(sig.signer, sig)
                if len(distinct) >= signer_set.threshold:
                    ordered = sorted(distinct.values(), key=lambda s: int(s.signer, 16))[: signer_set.threshold]
                    best = Quorum(members[0][0], digest, tuple(ordered))
            if best is not None:
                out[fault_id] = best
        return out

    def submit_faults(self, rental_id: int) -> list[Outcome]:
        """Slash for every quorum-signed fault of the rental not yet slashed on chain."""
        outcomes = []
        quorums = sorted(self.collect_faults(rental_id).items())
        if quorums and any(not self.client.is_fault_settled(rental_id, f) for f, _ in quorums) and self._stagger():
            return outcomes
        for fault_id, quorum in quorums:
            if self.client.is_fault_settled(rental_id, fault_id):
                outcomes.append(Outcome(rental_id, "already_settled", fault_id=fault_id))
                continue
            try:
                result = self.client.slash(quorum.report, quorum.packed)
            except TransactionRevertedError as exc:
                status = "already_settled" if exc.error_name == "ProviderStaking_FaultAlreadySettled" else "failed"
                outcomes.append(_reverted(rental_id, status, exc, fault_id=fault_id))
                continue
            self.stats["faults_slashed"] += 1
            outcomes.append(Outcome(rental_id, "slashed", fault_id=fault_id, tx_hash=result.tx_hash,
                                    gas_used=result.gas_used, signers=quorum.signers))
        return outcomes


def _settled(rental_id: int, sequence: int, result: TxResult, signers: tuple[str, ...], notes: dict[str, str]) -> Outcome:
    payment = sum(s.payment for s in settlements.from_events(result.events))
    return Outcome(rental_id, "settled", sequence=sequence, chain_sequence=sequence, payment=payment,
                   tx_hash=result.tx_hash, gas_used=result.gas_used, signers=signers, notes=notes)


def _why(rental_id: int, got: int, threshold: int, notes: dict[str, str]) -> str:
    who = f"rental {rental_id}" if rental_id >= 0 else "batch"
    return f"{who}: {got} valid signature(s), {threshold} needed ({'; '.join(f'{u}: {n}' for u, n in notes.items())})"


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail"))[:200]
    except ValueError:
        return response.text[:200]


class SettlementLoop(BackgroundLoop):
    """Settles the rentals ``rental_ids()`` names every ``interval_s`` seconds, in a thread.

    ``batch=True`` uses one ``settleBatch`` per round; ``submit_delay_s`` is multiplied by this
    node's rank in the signer set and waited between finding a quorum and sending it (then the
    chain is read again), so nodes do not all pay gas for the same report.
    ``slash_faults=True`` also submits quorum-signed fault reports.
    """

    thread_name = "gpurent-settlement"

    def __init__(
        self,
        aggregator: Aggregator,
        rental_ids: Callable[[], Iterable[int]],
        *,
        interval_s: float = 30.0,
        batch: bool = True,
        submit_delay_s: float = 0.0,
        slash_faults: bool = True,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.aggregator = aggregator
        self.rental_ids = rental_ids
        self.interval_s = interval_s
        self.batch = batch
        self.submit_delay_s = submit_delay_s
        self.slash_faults = slash_faults
        self.on_outcome = on_outcome
        self.outcomes: list[Outcome] = []  # the latest ones (trimmed: a node runs for months)
        self.keep_outcomes = 1000
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _rank(self) -> int:
        try:
            signers = list(self.aggregator.client.signer_set().signers)
        except ChainError:
            return 0
        account = self.aggregator.client.account
        return signers.index(account) if account in signers else len(signers)  # outsiders go last

    def run_once(self) -> list[Outcome]:
        ids = list(self.rental_ids())
        if not ids:
            return []
        self.aggregator.submit_delay_s = self.submit_delay_s * self._rank() if self.submit_delay_s else 0.0
        self.aggregator.stop = self._stop
        if self.batch and len(ids) > 1:
            outcomes = self.aggregator.settle_batch(ids)
        else:
            outcomes = [self.aggregator.settle_rental(i) for i in ids]
        if self.slash_faults:
            for rental_id in ids:
                outcomes.extend(self.aggregator.submit_faults(rental_id))
        if len(self.outcomes) + len(outcomes) > self.keep_outcomes:
            del self.outcomes[: len(self.outcomes) + len(outcomes) - self.keep_outcomes // 2]
        for outcome in outcomes:
            self.outcomes.append(outcome)
            if self.on_outcome is not None:
                self.on_outcome(outcome)
            if outcome.status in ("settled", "slashed"):
                log.info("rental %d: %s (sequence %s, tx %s)", outcome.rental_id, outcome.status,
                         outcome.sequence, outcome.tx_hash)
            elif outcome.status == "failed" or outcome.burned_gas:
                log.warning("rental %d: %s (sequence %s, fault %s): %s", outcome.rental_id, outcome.status,
                            outcome.sequence, outcome.fault_id, outcome.detail[:300])
        return outcomes

    def run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.run_once()
            except Exception as exc:  # keep settling: a bad round must not stop payments
                self.errors += 1
                log.warning("settlement round failed: %s: %s", type(exc).__name__, exc)
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))



class DueRentals:
    """The settleable rentals a settlement round should look at, so that an idle node stays cheap.

    With ``local_head`` (rental id -> contiguous batches this node holds) a rental is skipped
    while the last round that looked at it is less than ``recheck_s`` old and nothing changed
    since: the chain had settled everything this node holds, or that round found nothing new
    and this node has received no batch since. A skipped rental costs no RPC and no peer
    request; it is looked at again when a batch arrives, or after ``recheck_s`` (peers may have
    caught up). Without ``local_head`` every settleable rental is due every round.

    ``last_settled`` holds each rental's last settled sequence on chain as last seen (for metrics).
    """

    def __init__(
        self,
        settleable: Callable[[], Iterable[int]],
        local_head: Callable[[int], int] | None = None,
        *,
        recheck_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settleable = settleable
        self.local_head = local_head
        self.recheck_s = recheck_s
        self._clock = clock
        self._looked: dict[int, tuple[int, str, int | None, float]] = {}  # head, status, chain seq, when
        self._heads: dict[int, int] = {}
        self.last_settled: dict[int, int] = {}

    def __call__(self) -> list[int]:
        ids = list(self.settleable())
        live = set(ids)
        for gone in [r for r in self.last_settled if r not in live]:
            self.last_settled.pop(gone, None)
            self._looked.pop(gone, None)
            self._heads.pop(gone, None)
        if self.local_head is None:
            return ids
        now = self._clock()
        due = []
        for rental_id in ids:
            head = self.local_head(rental_id)
            looked = self._looked.get(rental_id)
            if looked is not None and now - looked[3] < self.recheck_s:
                last_head, status, chain_sequence, _ = looked
                if chain_sequence is not None and chain_sequence >= head:
                    continue  # everything this node holds is settled
                if status == "nothing_new" and last_head == head:
                    continue  # no new batch here since the quorum was found settled
            self._heads[rental_id] = head
            due.append(rental_id)
        return due

    def record(self, outcome: Outcome) -> None:
        """Remember a usage outcome (fault outcomes say nothing about the rental's sequence)."""
        if outcome.fault_id is not None:
            return
        rental_id = outcome.rental_id
        chain_sequence = outcome.chain_sequence
        if chain_sequence is not None:
            chain_sequence = max(chain_sequence, self.last_settled.get(rental_id, 0))
            self.last_settled[rental_id] = chain_sequence
        self._looked[rental_id] = (self._heads.get(rental_id, 0), outcome.status, chain_sequence, self._clock())


class _WatchedFollower(EventFollower):
    """An :class:`EventFollower` that remembers when its last poll succeeded and why one failed."""

    last_ok_at: float | None = None  # unix seconds of the last successful poll
    last_error: str | None = None  # why the latest poll failed (None once one succeeds again)

    def poll_once(self) -> int:
        try:
            delivered = super().poll_once()
        except Exception as exc:
            self.last_error = redact(f"{type(exc).__name__}: {exc}")[:300]
            raise
        self.last_ok_at = time.time()
        self.last_error = None
        return delivered


class ChainServices:
    """What a node runs beside its HTTP API when it has an RPC endpoint (for ``create_app``'s
    lifespan or ``run_node``): an :class:`EventFollower` that feeds the node's rental registry
    from ``RentalStarted`` (and tracks which rentals may still settle), and a
    :class:`SettlementLoop` that aggregates signatures from ``node_urls`` (this node's own URL
    and its peers) and submits ``settleBatch``/``settle`` and fault reports with the node key.

    ``settle=False`` runs the follower only. ``local_head`` (rental id -> batches this node
    holds) lets idle rentals skip settlement rounds (:class:`DueRentals`); ``on_outcome`` sees
    every outcome (metrics). Constructing it makes no RPC call: an unreachable endpoint only
    shows in the threads' errors, which they log and retry.

    Its state (follower cursor, block-hash checkpoints, rental statuses) lives in its own
    tables of ``db_path`` (the node's SQLite file is fine).
    """

    def __init__(
        self,
        *,
        rpc_url: str,
        node_key: bytes,
        market_address: str,
        node_urls: Sequence[str],
        registries: Sequence[Any],
        db_path: str,
        start_block: int = 0,
        confirmations: int = 2,
        poll_interval_s: float = 2.0,
        settle_interval_s: float = 60.0,
        batch: bool = True,
        submit_delay_s: float = 5.0,
        slash_faults: bool = True,
        policy: Any = None,
        http: httpx.Client | None = None,
        settle: bool = True,
        local_head: Callable[[int], int] | None = None,
        recheck_s: float | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.client = MarketClient.from_private_key(rpc_url, node_key, market_address, policy=policy)
        # the follower thread reads through its own connection (no HTTP session shared across threads)
        reader = MarketClient.from_private_key(rpc_url, node_key, market_address, policy=policy)
        self.settle = settle
        self.store = CursorStore(db_path)
        self.feed = RentalRegistryFeed(reader, registries, store=self.store)
        self.follower = _WatchedFollower(
            reader.w3, reader.address, reader.abi, self.feed,
            store=self.store, confirmations=confirmations, start_block=start_block,
            poll_interval_s=poll_interval_s, on_rewind=self.feed.on_rewind,
            event_names=["RentalStarted", "RentalEnded", "RentalFinalized", "RentalCancelled"],
        )
        self.aggregator = Aggregator(self.client, node_urls, http=http)
        self.due = DueRentals(self.feed.settleable, local_head,
                              recheck_s=recheck_s if recheck_s is not None else max(60.0, 10 * settle_interval_s))
        self._on_outcome = on_outcome
        self.loop = SettlementLoop(
            self.aggregator, self.due, interval_s=settle_interval_s, batch=batch,
            submit_delay_s=submit_delay_s, slash_faults=slash_faults, on_outcome=self._outcome,
        )

    def _outcome(self, outcome: Outcome) -> None:
        self.due.record(outcome)
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    def start(self) -> "ChainServices":
        self.follower.start()
        if self.settle:
            self.loop.start()
        return self

    def stop(self) -> None:
        self.loop.stop()
        self.follower.stop()
        self.aggregator.close()
        self.store.close()
