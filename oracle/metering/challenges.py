"""The hook between proof-of-GPU challenges and metering (docs/protocol.md, "Metering").

The challenge protocol (another module) judges each challenge of a rental; metering only needs
its outcome: how many passed and failed so far, and which periods are unpaid because a
challenge in them failed or went unanswered. A node's :class:`ChallengeLedger` answers that for
a report's period end; every honest node must give the same answer for the same rental and
time (challenges are seeded and judged from data all nodes share), or the reports differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol, runtime_checkable

from oracle.errors import MeteringError


@dataclass(frozen=True, slots=True)
class ChallengeOutcomes:
    """A rental's challenge record up to some time.

    ``passed``/``failed``: cumulative counts of challenges judged at or before that time
    (``failed`` includes unanswered ones). ``unpaid_intervals``: half-open ``[start_ms, end_ms)``
    spans of unix ms; a metering interval whose end sample lies in one is not paid (its
    available time, busy time and energy are taken out of the report's totals).
    """

    passed: int = 0
    failed: int = 0
    unpaid_intervals: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        for name in ("passed", "failed"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise MeteringError(f"ChallengeOutcomes.{name} must be a non-negative int, got {value!r}")
        for span in self.unpaid_intervals:
            if (len(span) != 2 or any(type(v) is not int for v in span) or span[0] < 0
                    or span[1] <= span[0]):
                raise MeteringError(f"unpaid interval {span!r} is not [start_ms, end_ms) with start < end")


@runtime_checkable
class ChallengeLedger(Protocol):
    """Per-rental challenge outcomes, as the proof-of-GPU protocol judged them."""

    def outcomes(self, rental_id: int, up_to_ms: int) -> ChallengeOutcomes:
        """Challenges of ``rental_id`` judged at or before ``up_to_ms`` (a report's period end)."""
        ...


class NoChallenges:
    """The ledger of a node without proof-of-GPU: nothing passed, nothing failed, all paid."""

    def outcomes(self, rental_id: int, up_to_ms: int) -> ChallengeOutcomes:
        return ChallengeOutcomes()


def merge_intervals(spans: Iterable[tuple[int, int]], lo_ms: int, hi_ms: int) -> list[tuple[int, int]]:
    """The union of half-open ``spans`` clipped to ``[lo_ms, hi_ms]``, sorted and disjoint
    (so no period is taken out of a report twice)."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        start, end = max(start, lo_ms), min(end, hi_ms + 1)
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
