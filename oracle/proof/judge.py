"""Verdicts: one node's judgement of one challenge, the quorum of the signer set, and what the
verdicts mean for a rental's pay. Pure.

A challenge passes only if all of these hold (docs/protocol.md, "Proof of GPU: verdicts"):
the commitment arrived by the commit deadline, named the GPU the rental's telemetry lists at
that index, its openings arrived by the open deadline and verified, and that GPU's telemetry
shows it computing during the window (issue time to commitment).
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

from oracle.proof.params import MIN_WINDOW_POWER_BPS, MIN_WINDOW_UTIL_PCT
from oracle.proof.verify import Verification


class Outcome(str, enum.Enum):
    PASSED = "passed"
    MISSED = "missed"            # no commitment by the commit deadline, or no openings by the open deadline
    LATE = "late"                # a commitment, after the commit deadline
    WRONG = "wrong"              # openings that do not verify
    WRONG_GPU = "wrong_gpu"      # the answer names a GPU the rental's telemetry does not list at that index
    NO_LOAD = "no_load"          # telemetry shows no computation during the window, or none at all

    @property
    def passed(self) -> bool:
        return self is Outcome.PASSED


@dataclass(frozen=True, slots=True)
class WindowSample:
    t_ms: int
    power_mw: int
    util_gpu_pct: int


def window_responds(samples: Sequence[WindowSample], start_ms: int, end_ms: int, power_limit_mw: int) -> tuple[bool, str]:
    """Does one GPU's telemetry show it computing between ``start_ms`` and ``end_ms``?

    Mean utilization >= MIN_WINDOW_UTIL_PCT and mean power >= MIN_WINDOW_POWER_BPS of the model's
    power limit over the samples in the window (at least one). A renter's job at full load also
    passes: what must never pass is an idle or absent trace while the GPU answered a challenge.
    """
    inside = [s for s in samples if start_ms <= s.t_ms <= end_ms]
    if not inside:
        return False, f"no telemetry sample between {start_ms} and {end_ms}"
    util = sum(s.util_gpu_pct for s in inside) // len(inside)
    power = sum(s.power_mw for s in inside) // len(inside)
    floor_mw = power_limit_mw * MIN_WINDOW_POWER_BPS // 10_000
    if util < MIN_WINDOW_UTIL_PCT or power < floor_mw:
        return False, (f"{len(inside)} samples in the window: mean utilization {util} % (needs "
                       f"{MIN_WINDOW_UTIL_PCT}), mean power {power} mW (needs {floor_mw})")
    return True, f"{len(inside)} samples, mean utilization {util} %, mean power {power} mW"


def decide(*, committed_at_ms: int | None, commit_deadline_ms: int, gpu_matches: bool | None,
           opened_at_ms: int | None, open_deadline_ms: int, verification: Verification | None,
           telemetry: tuple[bool, str] | None) -> tuple[Outcome, str]:
    """One node's verdict from what it observed (None: not observed)."""
    if committed_at_ms is None:
        return Outcome.MISSED, "no commitment"
    if committed_at_ms > commit_deadline_ms:
        return Outcome.LATE, f"commitment {committed_at_ms - commit_deadline_ms} ms after the deadline"
    if gpu_matches is False:
        return Outcome.WRONG_GPU, "the answer names a GPU the telemetry does not list at that index"
    if opened_at_ms is None or verification is None:
        return Outcome.MISSED, "no openings"
    if opened_at_ms > open_deadline_ms:
        return Outcome.MISSED, f"openings {opened_at_ms - open_deadline_ms} ms after their deadline"
    if not verification.ok:
        return Outcome.WRONG, verification.reason
    if telemetry is not None and not telemetry[0]:
        return Outcome.NO_LOAD, telemetry[1]
    return Outcome.PASSED, "verified" + ("" if telemetry is None else "; telemetry: " + telemetry[1])


def quorum(outcomes: Iterable[Outcome], threshold: int) -> Outcome | None:
    """The outcome at least ``threshold`` nodes of the signer set agree on; None while none has.

    One lying node cannot change a verdict that ``threshold`` honest nodes share; with a
    threshold above half the set, two different outcomes can never both reach it.
    """
    counts = Counter(outcomes)
    agreed = [outcome for outcome, count in counts.items() if count >= threshold]
    return agreed[0] if len(agreed) == 1 else None


@dataclass(frozen=True, slots=True)
class Judged:
    """A decided challenge as the pay rules see it. ``due_ms``: when every node has judged it
    (open deadline + telemetry grace); metering counts it from then on."""

    gpu_index: int
    issued_at_ms: int
    passed: bool
    due_ms: int


def rental_outcomes(judged: Iterable[Judged], up_to_ms: int) -> tuple[int, int, list[tuple[int, int, int]]]:
    """(passed, failed, unpaid intervals) of one rental's challenges due by ``up_to_ms``.

    A failed challenge leaves its GPU unpaid from the moment it is due (decided everywhere)
    until a later challenge of that GPU passes and is due (or ``up_to_ms``): intervals are
    (gpu_index, start_ms, end_ms), non-empty. Starting at the due time, not the issue time, keeps
    cumulative reports monotone: a report for a period ending before the due time never counted
    the challenge, and none of the time it paid is taken back.
    """
    decided = sorted((j for j in judged if j.due_ms <= up_to_ms), key=lambda j: (j.gpu_index, j.due_ms))
    passed = sum(1 for j in decided if j.passed)
    failed = len(decided) - passed
    unpaid: list[tuple[int, int, int]] = []
    open_since: dict[int, int] = {}
    for j in decided:
        if not j.passed:
            open_since.setdefault(j.gpu_index, j.due_ms)
        elif j.gpu_index in open_since:
            unpaid.append((j.gpu_index, open_since.pop(j.gpu_index), j.due_ms))
    unpaid.extend((gpu, start, up_to_ms) for gpu, start in open_since.items())
    return passed, failed, sorted(span for span in unpaid if span[2] > span[1])
