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
of them pays gas for a given report; the others find it settled and skip.
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
from oracle.chain.client import MarketClient, SignerSet, recover
from oracle.chain.errors import TransactionRevertedError
from oracle.chain.tx import TxResult
from oracle.errors import ChainError, GpurentError

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
    fault_id: int | None = None
    payment: int = 0
    tx_hash: str | None = None
    gas_used: int | None = None
    signers: tuple[str, ...] = ()
    detail: str = ""
    notes: dict[str, str] = field(default_factory=dict)


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

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------ HTTP
    def _get(self, url: str, path: str, params: dict[str, Any] | None = None) -> dict[str, Any] | str:
        try:
            response = self.http.get(url + path, params=params)
        except httpx.HTTPError as exc:
            self.stats["peer_unreachable"] += 1
            return f"unreachable ({type(exc).__name__})"
        if response.status_code != 200:
            return f"HTTP {response.status_code}: {_detail(response)}"
        return response.json()

    def _post(self, url: str, path: str, body: dict[str, Any]) -> dict[str, Any] | str:
        try:
            response = self.http.post(url + path, json=body)
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
            return Outcome(rental_id, "not_settleable", detail=f"rental is {rental['statusName']}")
        notes: dict[str, str] = {}
        max_end = int(rental["endedAt"]) if rental["status"] == ENDED else None
        try:
            quorum = self.collect_usage(rental_id, max_period_end=max_end, notes=notes)
        except QuorumNotReached as exc:
            self.stats["no_quorum"] += 1
            return Outcome(rental_id, "no_quorum", detail=str(exc), notes=notes)
        sequence = quorum.report.sequence
        if sequence <= last:
            return Outcome(rental_id, "nothing_new", sequence=sequence, detail=f"sequence {last} already settled",
                           notes=notes)
        try:
            result = self.client.settle(quorum.report, quorum.packed)
        except TransactionRevertedError as exc:
            if exc.error_name == "UsageSettlement_StaleSequence":
                self.stats["already_settled"] += 1
                return Outcome(rental_id, "already_settled", sequence=sequence, detail=str(exc), notes=notes)
            self.stats["submit_failed"] += 1
            return Outcome(rental_id, "failed", sequence=sequence, detail=str(exc), notes=notes)
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
            if rental["status"] not in (ACTIVE, ENDED):
                outcomes[rental_id] = Outcome(rental_id, "not_settleable", detail=f"rental is {rental['statusName']}")
                continue
            max_end = int(rental["endedAt"]) if rental["status"] == ENDED else None
            try:
                quorum = self.collect_usage(rental_id, max_period_end=max_end, signer_set=signer_set)
            except QuorumNotReached as exc:
                outcomes[rental_id] = Outcome(rental_id, "no_quorum", detail=str(exc))
                continue
            if quorum.report.sequence <= int(rental["sequence"]):
                outcomes[rental_id] = Outcome(rental_id, "nothing_new", sequence=quorum.report.sequence)
                continue
            chosen.append(quorum)
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
            for q in chosen:
                outcomes[q.report.rental_id] = Outcome(q.report.rental_id, status, q.report.sequence,
                                                       detail=str(exc), notes=notes)
            return list(outcomes.values())
        paid = {int(ev["rentalId"]): int(ev["payment"]) for ev in result.events.get("UsageSettled", [])}
        skipped = {int(ev["rentalId"]) for ev in result.events.get("UsageReportSkipped", [])}
        signers = tuple(s.signer for s in ordered)
        for q in chosen:
            rid = q.report.rental_id
            if rid in skipped:
                outcomes[rid] = Outcome(rid, "already_settled", q.report.sequence, tx_hash=result.tx_hash,
                                        notes=notes)
            else:
                outcomes[rid] = Outcome(rid, "settled", q.report.sequence, payment=paid.get(rid, 0),
                                        tx_hash=result.tx_hash, gas_used=result.gas_used, signers=signers,
                                        notes=notes)
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
        for fault_id, quorum in sorted(self.collect_faults(rental_id).items()):
            if self.client.is_fault_settled(rental_id, fault_id):
                outcomes.append(Outcome(rental_id, "already_settled", fault_id=fault_id))
                continue
            try:
                result = self.client.slash(quorum.report, quorum.packed)
            except TransactionRevertedError as exc:
                status = "already_settled" if exc.error_name == "ProviderStaking_FaultAlreadySettled" else "failed"
                outcomes.append(Outcome(rental_id, status, fault_id=fault_id, detail=str(exc)))
                continue
            self.stats["faults_slashed"] += 1
            outcomes.append(Outcome(rental_id, "slashed", fault_id=fault_id, tx_hash=result.tx_hash,
                                    gas_used=result.gas_used, signers=quorum.signers))
        return outcomes


def _settled(rental_id: int, sequence: int, result: TxResult, signers: tuple[str, ...], notes: dict[str, str]) -> Outcome:
    payment = sum(int(ev["payment"]) for ev in result.events.get("UsageSettled", []))
    return Outcome(rental_id, "settled", sequence=sequence, payment=payment, tx_hash=result.tx_hash,
                   gas_used=result.gas_used, signers=signers, notes=notes)


def _why(rental_id: int, got: int, threshold: int, notes: dict[str, str]) -> str:
    who = f"rental {rental_id}" if rental_id >= 0 else "batch"
    return f"{who}: {got} valid signature(s), {threshold} needed ({'; '.join(f'{u}: {n}' for u, n in notes.items())})"


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail"))[:200]
    except ValueError:
        return response.text[:200]


class SettlementLoop:
    """Settles the rentals ``rental_ids()`` names every ``interval_s`` seconds, in a thread.

    ``batch=True`` uses one ``settleBatch`` per round; ``submit_delay_s`` is multiplied by this
    node's rank in the signer set, so nodes do not all pay gas for the same report.
    ``slash_faults=True`` also submits quorum-signed fault reports.
    """

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
        self.outcomes: list[Outcome] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _rank(self) -> int:
        try:
            signers = self.aggregator.client.signer_set().signers
            return list(signers).index(self.aggregator.client.account)
        except (ValueError, ChainError):
            return 0

    def run_once(self) -> list[Outcome]:
        ids = list(self.rental_ids())
        if not ids:
            return []
        delay = self.submit_delay_s * self._rank()
        if delay and self._stop.wait(delay):
            return []
        if self.batch and len(ids) > 1:
            outcomes = self.aggregator.settle_batch(ids)
        else:
            outcomes = [self.aggregator.settle_rental(i) for i in ids]
        if self.slash_faults:
            for rental_id in ids:
                outcomes.extend(self.aggregator.submit_faults(rental_id))
        for outcome in outcomes:
            self.outcomes.append(outcome)
            if self.on_outcome is not None:
                self.on_outcome(outcome)
            if outcome.status in ("settled", "slashed"):
                log.info("rental %d: %s (sequence %s, tx %s)", outcome.rental_id, outcome.status,
                         outcome.sequence, outcome.tx_hash)
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

    def start(self) -> "SettlementLoop":
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self.run, name="gpurent-settlement", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)


class ChainServices:
    """What a node runs beside its HTTP API when it has an RPC endpoint (for ``create_app``'s
    lifespan or ``run_node``): an :class:`EventFollower` that feeds the node's rental registry
    from ``RentalStarted`` (and tracks which rentals may still settle), and a
    :class:`SettlementLoop` that aggregates signatures from ``node_urls`` (this node's own URL
    and its peers) and submits ``settleBatch``/``settle`` and fault reports with the node key.

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
    ) -> None:
        from oracle.chain.events import CursorStore, EventFollower, RentalRegistryFeed

        self.client = MarketClient.from_private_key(rpc_url, node_key, market_address, policy=policy)
        # the follower thread reads through its own connection (no HTTP session shared across threads)
        reader = MarketClient.from_private_key(rpc_url, node_key, market_address, policy=policy)
        self.store = CursorStore(db_path)
        self.feed = RentalRegistryFeed(reader, registries, store=self.store)
        self.follower = EventFollower(
            reader.w3, reader.address, reader.abi, self.feed,
            store=self.store, confirmations=confirmations, start_block=start_block,
            poll_interval_s=poll_interval_s, on_rewind=self.feed.on_rewind,
            event_names=["RentalStarted", "RentalEnded", "RentalFinalized", "RentalCancelled"],
        )
        self.aggregator = Aggregator(self.client, node_urls, http=http)
        self.loop = SettlementLoop(
            self.aggregator, self.feed.settleable, interval_s=settle_interval_s, batch=batch,
            submit_delay_s=submit_delay_s, slash_faults=slash_faults,
        )

    def start(self) -> "ChainServices":
        self.follower.start()
        self.loop.start()
        return self

    def stop(self) -> None:
        self.loop.stop()
        self.follower.stop()
        self.aggregator.close()
        self.store.close()
