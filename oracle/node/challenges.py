"""Proof of GPU on the node: issue the challenges every node derives from the chain, take the
agent's answers, judge them, agree on verdicts with the other nodes, and tell metering what
they mean for pay (docs/protocol.md, "Proof of GPU").

:class:`ChallengeService` is the node's side; :class:`~oracle.node.challenge_loop.ChallengeLoop`
runs it in a thread (beacons from :class:`~oracle.node.challenge_loop.Web3BeaconSource`, verdicts
of due challenges, peers' verdicts) and :class:`~oracle.node.challenge_loop.MeteringLedger` is what
metering asks. The
routes are in :mod:`oracle.node.api.routes.challenges`. Metering reads
:meth:`ChallengeService.outcomes` (``outcomes(rental_id, up_to_ms) -> (passed, failed,
unpaid_intervals)``), which counts only challenges the quorum has decided, so every node
reports the same numbers.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Protocol

from oracle.errors import BatchVerificationError
from oracle.gpu_models import gpu_model
from oracle.node.challenge_store import ChallengeStore, StoredChallenge, StoredVerdict
from oracle.node.rentals import Rental, RentalRegistry
from oracle.proof.answer import CellOpening
from oracle.proof.judge import Judged, Outcome, WindowSample, decide, quorum, rental_outcomes, window_responds
from oracle.proof.merkle import keccak
from oracle.proof.params import DEV_PROFILE_NAME, END_CHALLENGE_INDEX, ChallengeProfile, profile_for
from oracle.proof.schedule import (
    Beacon,
    Challenge,
    RentalSchedule,
    RentalScheduler,
    end_challenge_not_before_s,
    end_challenges,
)
from oracle.proof.seeds import VERSION, commitment_digest, opening_cells, openings_digest
from oracle.proof.verify import verify_openings
from oracle.telemetry.batches import address_of, canonical_json, recover_batch_signer, sign_batch_hash
from oracle.telemetry.codec import decode_batch  # the node's compact stored form (it also reads wire JSON)

log = logging.getLogger(__name__)

DEFAULT_SLASH_WINDOW_S = 3_600  # the protocol's default slash window (metering's DEFAULT_SLASH_WINDOW_SECONDS)


class ChallengeError(Exception):
    """A request about a challenge the node refuses; ``status`` is its HTTP status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def verdict_digest(challenge_id: str, outcome: str) -> bytes:
    """What a node signs for a verdict: keccak(version || challenge seed || outcome)."""
    return keccak(VERSION + b".verdict" + bytes.fromhex(challenge_id[2:]) + outcome.encode())


@dataclass(frozen=True, slots=True)
class ChallengeConfig:
    chain_id: int
    market: str
    mode: str                     # "dev": the dev profile for every rental; "model": the rental's GPU model
    mean_interval_s: int
    quorum: int                   # verdicts (this node's included) that decide a challenge
    check_telemetry: bool         # bind verdicts to the GPU's telemetry (off only for the CPU dev path)
    peers: tuple[str, ...] = ()   # other nodes' base URLs, asked for their verdicts
    lie: bool = False             # fault injection (tests, dev mode only): record the opposite verdict
    clock: str = "wall"           # "chain" (dev chains only): deadlines on the chain's clock as last seen


class BeaconSource(Protocol):
    def poll(self) -> list[Beacon]: ...


class ChallengeService:
    def __init__(self, store: ChallengeStore, registry: RentalRegistry, node_key: bytes,
                 config: ChallengeConfig, clock: Callable[[], int] | None = None) -> None:
        self.store = store
        self.registry = registry
        self.config = config
        self._key = node_key
        self.address = address_of(node_key)
        self._clock = clock or (lambda: time.time_ns() // 1_000_000)
        self._chain_offset_ms = 0  # clock "chain": newest block's timestamp minus our clock when we saw it
        self._schedulers: dict[int, RentalScheduler] = {}
        self._end_issued: set[int] = set()  # rentals whose end challenge is issued
        self._lock = threading.RLock()

    def now_ms(self) -> int:
        """Our clock; with ``clock = "chain"`` shifted onto the chain's (a dev chain whose clock
        was set back, as the demo's time-compressed replay does)."""
        return self._clock() + self._chain_offset_ms

    # -- schedule ------------------------------------------------------------------------------
    def profile_of(self, rental: Rental) -> ChallengeProfile | None:
        if self.config.mode == DEV_PROFILE_NAME:
            return profile_for(DEV_PROFILE_NAME)
        model = getattr(rental, "gpu_model", None)  # the rental terms' model (fixed at openRental)
        return profile_for(model) if model else None

    def _scheduler(self, rental_id: int) -> RentalScheduler | None:
        scheduler = self._schedulers.get(rental_id)
        if scheduler is None:
            rental = self.registry.get(rental_id)
            profile = None if rental is None else self.profile_of(rental)
            if profile is None:
                return None
            end_ms = getattr(rental, "end_ms", None)
            schedule = RentalSchedule(rental_id, -(-rental.start_ms // 1000), rental.gpu_count, profile,
                                      None if end_ms is None else end_ms // 1000)
            scheduler = self._schedulers[rental_id] = RentalScheduler(
                schedule, self.config.chain_id, self.config.market, self.config.mean_interval_s)
            self._issue(scheduler, self.store.beacons())  # catch up on the beacons already stored
        return scheduler

    def _issue(self, scheduler: RentalScheduler, beacons: list[Beacon]) -> None:
        self._put([c for beacon in beacons for c in scheduler.feed(beacon)])

    def _put(self, issued: list[Challenge]) -> None:
        for c in issued:
            log.info("challenge %s: rental %d GPU %d index %d from block %d (t=%d), commit by %d (now %d)",
                     c.id[:10], c.rental_id, c.gpu_index, c.index, c.beacon.number, c.beacon.timestamp_s,
                     c.commit_deadline_ms, self.now_ms())
        self.store.put_challenges([StoredChallenge(c.id, c.rental_id, c.index, c.gpu_index, c.beacon.number,
                                                   c.profile.name, c.issued_at_ms, c.commit_deadline_ms,
                                                   c.open_deadline_ms) for c in issued])

    def ingest_beacons(self, beacons: list[Beacon]) -> None:
        """New blocks: store them, then issue the challenges they draw for every known rental."""
        if not beacons:
            return
        with self._lock:
            if self.config.clock == "chain":
                self._chain_offset_ms = beacons[-1].timestamp_s * 1000 - self._clock()
            self.store.put_beacons(beacons)
            for rental_id in self.store.known_rental_ids():
                scheduler = self._scheduler(rental_id)
                if scheduler is not None:
                    self._follow_end(scheduler)
                    self._issue(scheduler, beacons)
                    self._issue_end(scheduler)

    def end_ms_of(self, rental_id: int) -> int | None:
        """The rental's last millisecond once it ended (rental terms' ``end_ms``), else None."""
        return getattr(self.registry.get(rental_id), "end_ms", None)

    def _follow_end(self, scheduler: RentalScheduler) -> None:
        """An ended rental draws no more challenges; any drawn after its end (seen before the end
        event) are withdrawn undecided."""
        end_ms = self.end_ms_of(scheduler.rental.rental_id)
        if end_ms is not None and scheduler.rental.end_s is None:
            scheduler.rental = replace(scheduler.rental, end_s=end_ms // 1000)
            self.store.withdraw_after(scheduler.rental.rental_id, end_ms)

    def _issue_end(self, scheduler: RentalScheduler) -> None:
        """Issue the end challenge of an ended rental from the first stored beacon that may draw
        it (:func:`~oracle.proof.schedule.end_challenge_not_before_s`): the same block on every
        node, whenever each learned of the end."""
        rental = scheduler.rental
        if rental.end_s is None or rental.rental_id in self._end_issued:
            return
        if self.store.end_challenges(rental.rental_id):
            self._end_issued.add(rental.rental_id)
            return
        last_open_ms = self.store.last_open_deadline_ms(rental.rental_id, rental.end_s * 1000 + 999)
        not_before_s = end_challenge_not_before_s(rental.end_s, last_open_ms, rental.profile.end_delay_s)
        beacon = self.store.first_beacon_at_or_after(not_before_s)
        if beacon is None:
            return
        self._put(end_challenges(rental, beacon, self.config.chain_id, self.config.market))
        self._end_issued.add(rental.rental_id)

    def end_status(self, rental_id: int) -> str:
        """What this node knows of the rental's end challenge: ``none`` (the rental is not
        challenged), ``not_ended``, ``awaited`` (ended; its block is not there yet) or ``issued``."""
        with self._lock:
            scheduler = self._scheduler(rental_id)
            if scheduler is None:
                return "none"
            self._follow_end(scheduler)
            self._issue_end(scheduler)
            if scheduler.rental.end_s is None:
                return "not_ended"
            return "issued" if rental_id in self._end_issued else "awaited"

    def end_outcome(self, rental_id: int) -> tuple[int | None, str] | None:
        """(GPU index, outcome) of the first GPU whose end challenge the quorum failed, or
        (None, "passed") when every GPU passed; None until the quorum decided all of them."""
        decided = [(c.gpu_index, self.quorum_outcome(c.id)) for c in self.store.end_challenges(rental_id)]
        if not decided or any(outcome is None for _, outcome in decided):
            return None
        failed = [(gpu, outcome.value) for gpu, outcome in decided if not outcome.passed]
        return failed[0] if failed else (None, Outcome.PASSED.value)

    # -- what the agent asks --------------------------------------------------------------------
    def _challenge(self, challenge_id: str) -> StoredChallenge:
        challenge = self.store.challenge(challenge_id)
        if challenge is None:
            raise ChallengeError(404, "unknown_challenge", f"no challenge {challenge_id}")
        return challenge

    def cells(self, challenge: StoredChallenge) -> list[tuple[int, int]] | None:
        """The cells to open, once the agent committed and a block at or after the commit deadline exists."""
        answer = self.store.answer(challenge.id)
        beacon = self.store.first_beacon_at_or_after(-(-challenge.commit_deadline_ms // 1000))
        if answer is None or beacon is None:
            return None
        shape = profile_for(challenge.profile).size(challenge.index).shape
        return opening_cells(bytes.fromhex(challenge.id[2:]), answer.digest, beacon.hash, shape.opened,
                             shape.segments, shape.rows)

    def describe(self, challenge: StoredChallenge) -> dict[str, Any]:
        verdict = self.store.verdict(challenge.id)
        cells = self.cells(challenge)
        return {"id": challenge.id, "rental_id": challenge.rental_id, "index": challenge.index,
                "gpu_index": challenge.gpu_index, "profile": challenge.profile, "seed": challenge.id,
                "beacon_number": challenge.beacon_number, "issued_at_ms": challenge.issued_at_ms,
                "commit_deadline_ms": challenge.commit_deadline_ms, "open_deadline_ms": challenge.open_deadline_ms,
                "cells": None if cells is None else [list(cell) for cell in cells],
                "outcome": None if verdict is None else verdict.outcome}

    def pending(self, rental_id: int) -> list[dict[str, Any]]:
        self._scheduler(rental_id)
        return [self.describe(c) for c in self.store.undecided(rental_id)]

    def _check_agent(self, challenge: StoredChallenge, digest: bytes, signature: bytes, what: str) -> None:
        """Only the rental's agent may answer (401: no valid signature, 403: another key)."""
        rental = self.registry.get(challenge.rental_id)
        try:
            signer = recover_batch_signer(digest, signature)
        except BatchVerificationError as exc:
            raise ChallengeError(401, "bad_signature", str(exc)) from None
        if rental is None or signer != rental.agent:
            raise ChallengeError(403, "wrong_agent", f"{what} signed by {signer}, not the rental's agent")

    def post_commitment(self, challenge_id: str, top_root: bytes, gpu_uuid: str, gpu_serial: str,
                        signature: bytes) -> dict[str, Any]:
        now = self.now_ms()
        challenge = self._challenge(challenge_id)
        digest = commitment_digest(bytes.fromhex(challenge_id[2:]), top_root, gpu_uuid, gpu_serial)
        self._check_agent(challenge, digest, signature, "commitment")
        recorded = self.store.record_commitment(challenge_id, digest, top_root, gpu_uuid, gpu_serial, signature, now)
        if recorded.digest != digest:
            raise ChallengeError(409, "commitment_conflict", "a different commitment is already recorded")
        self.decide_due(challenge_id)
        return {"status": "recorded", "committed_at_ms": recorded.committed_at_ms,
                "late": recorded.committed_at_ms > challenge.commit_deadline_ms}

    def post_openings(self, challenge_id: str, openings_wire: list[dict[str, Any]], signature: bytes) -> dict[str, Any]:
        now = self.now_ms()
        challenge = self._challenge(challenge_id)
        try:
            body = canonical_json(openings_wire)
        except ValueError as exc:  # floats, NaN: not the protocol's JSON
            raise ChallengeError(422, "malformed", str(exc)) from None
        self._check_agent(challenge, openings_digest(bytes.fromhex(challenge_id[2:]), body), signature, "openings")
        answer = self.store.answer(challenge_id)
        cells = self.cells(challenge)
        if answer is None or cells is None:
            raise ChallengeError(409, "not_open", "no commitment yet, or its opening block is not there yet")
        if answer.openings is not None:
            raise ChallengeError(409, "already_opened", "openings are recorded already")
        seed = bytes.fromhex(challenge_id[2:])
        shape = profile_for(challenge.profile).size(challenge.index).shape
        try:
            openings = [CellOpening.from_wire(o) for o in openings_wire]
        except (KeyError, TypeError, ValueError) as exc:
            result_ok, reason = False, f"malformed openings: {exc}"
        else:
            result = verify_openings(seed, shape, answer.top_root, cells, openings)
            result_ok, reason = result.ok, result.reason
        self.store.record_openings(challenge_id, openings_wire, now, result_ok, reason)
        verdict = self.decide_due(challenge_id)
        return {"status": "recorded", "verified": result_ok, "reason": reason,
                "outcome": None if verdict is None else verdict.outcome}

    # -- verdicts ------------------------------------------------------------------------------
    def _telemetry(self, rental_id: int, start_ms: int, end_ms: int
                   ) -> tuple[list[tuple[int, str, int]], dict[int, list[WindowSample]], int]:
        """(GPUs as (index, uuid, power limit mW), samples per GPU in the window, newest sample
        time of the rental): only the batches overlapping the window are decoded."""
        gpus: list[tuple[int, str, int]] = []
        samples: dict[int, list[WindowSample]] = {}
        for body in self.store.batches_overlapping(rental_id, start_ms, end_ms):
            batch = decode_batch(body)
            gpus = [(g.index, g.uuid, g.power_limit_mw) for g in batch.gpus]
            for s in batch.samples:
                samples.setdefault(s.gpu, []).append(WindowSample(s.t_ms, s.power_mw, s.util_gpu_pct))
        return gpus, samples, self.store.newest_sample_ms(rental_id)

    def decide_due(self, challenge_id: str) -> StoredVerdict | None:
        """Record (then sign) this node's verdict on a challenge if it can be decided now."""
        with self._lock:
            challenge = self._challenge(challenge_id)
            existing = self.store.verdict(challenge_id)
            if existing is not None:
                return existing
            now = self.now_ms()
            answer = self.store.answer(challenge_id)
            if answer is None and now <= challenge.commit_deadline_ms:
                return None
            gpu_matches, telemetry = None, None
            if answer is not None and answer.committed_at_ms <= challenge.commit_deadline_ms:
                if answer.openings is None and now <= challenge.open_deadline_ms:
                    return None
                # The end challenge runs after the rental's telemetry closed: time and memory are its proof.
                if answer.verified and self.config.check_telemetry and challenge.index != END_CHALLENGE_INDEX:
                    gpus, samples, newest = self._telemetry(challenge.rental_id, challenge.issued_at_ms,
                                                            answer.committed_at_ms)
                    grace_ms = profile_for(challenge.profile).telemetry_grace_ms
                    if newest < answer.committed_at_ms and now <= answer.committed_at_ms + grace_ms:
                        return None  # the batches covering the window are still on their way
                    listed = {index: (uuid, limit) for index, uuid, limit in gpus}
                    if challenge.gpu_index in listed:
                        gpu_matches = listed[challenge.gpu_index][0] == answer.gpu_uuid
                    limit_mw = (listed.get(challenge.gpu_index, ("", 0))[1] if challenge.profile == DEV_PROFILE_NAME
                                else gpu_model(challenge.profile).power_limit_mw)
                    telemetry = window_responds(samples.get(challenge.gpu_index, []), challenge.issued_at_ms,
                                                answer.committed_at_ms, limit_mw)
            outcome, detail = decide(
                committed_at_ms=None if answer is None else answer.committed_at_ms,
                commit_deadline_ms=challenge.commit_deadline_ms, gpu_matches=gpu_matches,
                opened_at_ms=None if answer is None else answer.opened_at_ms,
                open_deadline_ms=challenge.open_deadline_ms,
                verification=None if answer is None or answer.verified is None else _Verified(answer.verified,
                                                                                             answer.verify_reason),
                telemetry=telemetry)
            if self.config.lie:
                outcome, detail = (Outcome.WRONG if outcome.passed else Outcome.PASSED), "lying on purpose"
            self.store.record_verdict(challenge, outcome.value, detail, now)  # durable before anyone sees it
            return self.store.sign_verdict(challenge_id, lambda v: verdict_digest(v.id, v.outcome),
                                           lambda digest: sign_batch_hash(self._key, digest))

    def decide_all_due(self) -> int:
        decided = 0
        for challenge in self.store.undecided():
            if self.decide_due(challenge.id) is not None:
                decided += 1
        return decided

    def verdict(self, challenge_id: str) -> StoredVerdict | None:
        self._challenge(challenge_id)
        return self.decide_due(challenge_id)

    # -- quorum --------------------------------------------------------------------------------
    def add_peer_verdict(self, challenge_id: str, outcome: str, signer: str, signature: bytes) -> bool:
        """Keep a peer's verdict if its signature recovers to ``signer``."""
        try:
            Outcome(outcome)
            if recover_batch_signer(verdict_digest(challenge_id, outcome), signature) != signer:
                return False
        except (BatchVerificationError, ValueError):
            return False
        if signer != self.address:
            self.store.put_peer_verdict(challenge_id, signer, outcome, signature)
        return True

    def quorum_outcome(self, challenge_id: str) -> Outcome | None:
        decided = self.store.quorum(challenge_id)
        if decided is not None:
            return Outcome(decided)
        own = self.store.verdict(challenge_id)
        outcomes = [Outcome(o) for o in self.store.peer_verdicts(challenge_id).values()]
        if own is not None:
            outcomes.append(Outcome(own.outcome))
        agreed = quorum(outcomes, self.config.quorum)
        if agreed is not None:
            self.store.put_quorum(challenge_id, agreed.value)
        return agreed

    def outcomes(self, rental_id: int, up_to_ms: int) -> tuple[int, int, list[tuple[int, int, int]]]:
        """The metering hook: (passed, failed, unpaid (gpu_index, start_ms, end_ms)) of the rental's
        challenges the quorum has decided among those *due* by ``up_to_ms`` (open deadline plus
        telemetry grace passed: every node has judged them), so every node counts the same set
        for the same ``up_to_ms``; unpaid time runs from a failure's due time (see
        :func:`oracle.proof.judge.rental_outcomes`)."""
        judged = []
        end_ms = self.end_ms_of(rental_id)
        for challenge in self.store.rental_challenges(rental_id):
            if end_ms is not None and challenge.issued_at_ms > end_ms:
                continue  # drawn after the rental ended (before this node saw the end)
            decided = self.quorum_outcome(challenge.id)
            if decided is not None:
                due_ms = challenge.open_deadline_ms + profile_for(challenge.profile).telemetry_grace_ms
                judged.append(Judged(challenge.gpu_index, challenge.issued_at_ms, decided.passed, due_ms))
        return rental_outcomes(judged, up_to_ms)

    def failed_windows(self, rental_id: int, up_to_ms: int, window_s: int) -> list[tuple[int, int, int, int, str]]:
        """CHALLENGE_FAILED faults, one per slash window: for the first challenge of each window
        (window = (issue - start) // window_s) that the quorum failed and that is due by
        ``up_to_ms``: (gpu_index, issued_at_ms, due_ms, window, detail). ``due_ms`` (when every node
        has judged it) is the fault's end, so a list sorted by end only ever grows at its end."""
        rental = self.registry.get(rental_id)
        if rental is None:
            return []
        end_ms = self.end_ms_of(rental_id)
        seen: dict[int, tuple[int, int, int, int, str]] = {}
        for challenge in self.store.rental_challenges(rental_id):
            profile = profile_for(challenge.profile)
            due_ms = challenge.open_deadline_ms + profile.telemetry_grace_ms
            if due_ms > up_to_ms or (end_ms is not None and challenge.issued_at_ms > end_ms):
                continue
            decided = self.quorum_outcome(challenge.id)
            if decided is None or decided.passed:
                continue
            window = (challenge.issued_at_ms - rental.start_ms) // (window_s * 1000)
            if window not in seen:
                seen[window] = (challenge.gpu_index, challenge.issued_at_ms, due_ms, window,
                                f"challenge {challenge.index} gpu {challenge.gpu_index} {decided.value}")
        return sorted(seen.values(), key=lambda f: (f[2], f[3]))

    def summary(self, rental_id: int) -> dict[str, Any]:
        """What the node knows of a rental's challenges: each one's verdicts, the counts of those
        the quorum decided, what the reports count (due ones only) and the unpaid spans."""
        now = self.now_ms()
        counted_passed, counted_failed, unpaid = self.outcomes(rental_id, now)
        rows = []
        end_ms = self.end_ms_of(rental_id)
        for challenge in self.store.rental_challenges(rental_id):
            if end_ms is not None and challenge.issued_at_ms > end_ms:
                continue
            own = self.store.verdict(challenge.id)
            decided = self.quorum_outcome(challenge.id)
            rows.append({"id": challenge.id, "index": challenge.index, "gpu_index": challenge.gpu_index,
                         "issued_at_ms": challenge.issued_at_ms,
                         "due_ms": challenge.open_deadline_ms + profile_for(challenge.profile).telemetry_grace_ms,
                         "verdict": None if own is None else own.outcome,
                         "detail": None if own is None else own.detail,
                         "quorum": None if decided is None else decided.value})
        decided_rows = [row["quorum"] for row in rows if row["quorum"] is not None]
        end = self.end_outcome(rental_id)
        return {"rental_id": rental_id, "passed": decided_rows.count("passed"),
                "failed": len(decided_rows) - decided_rows.count("passed"),
                "counted": {"passed": counted_passed, "failed": counted_failed},
                "unpaid": [{"gpu_index": g, "start_ms": s, "end_ms": e} for g, s, e in unpaid], "challenges": rows,
                "end_challenge": {"status": self.end_status(rental_id), "quorum": None if end is None else end[1],
                                  "gpu_index": None if end is None else end[0]}}


@dataclass(frozen=True, slots=True)
class _Verified:
    ok: bool
    reason: str | None


# The loop, the beacon source, the metering adapter and the wiring live in challenge_loop
# (imported last: it builds on the service above); importing them from here keeps working.
from oracle.node.challenge_loop import (  # noqa: E402
    ChallengeLoop,
    MeteringLedger,
    Web3BeaconSource,
    build_challenges,
)

__all__ = [
    "BeaconSource", "ChallengeConfig", "ChallengeError", "ChallengeLoop", "ChallengeService", "MeteringLedger",
    "Web3BeaconSource", "build_challenges", "verdict_digest",
]
