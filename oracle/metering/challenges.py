"""The hook between proof-of-GPU challenges and metering (docs/protocol.md, "Metering").

The challenge protocol (another module) judges each challenge of a rental; metering only needs
its outcome: how many passed and failed so far, and which periods are unpaid because a
challenge in them failed or went unanswered. A node's :class:`ChallengeLedger` answers that for
a report's period end; every honest node must give the same answer for the same rental and
time (challenges are seeded and judged from data all nodes share), or the reports differ.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Protocol, runtime_checkable

from oracle.errors import MeteringError
from oracle.metering.core import BPS, _CARBON_DIVISOR, UsageTotals
from oracle.metering.policy import MeterTerms


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


@dataclass(frozen=True, slots=True)
class UnpaidUsage:
    """What the intervals inside unpaid spans added to the totals (to be taken out again)."""

    available_gpu_milliseconds: int = 0
    busy_gpu_milliseconds: int = 0
    energy_millijoules: int = 0

    def __add__(self, other: "UnpaidUsage") -> "UnpaidUsage":
        return UnpaidUsage(self.available_gpu_milliseconds + other.available_gpu_milliseconds,
                           self.busy_gpu_milliseconds + other.busy_gpu_milliseconds,
                           self.energy_millijoules + other.energy_millijoules)


def exclude_unpaid(totals: UsageTotals, terms: MeterTerms, unpaid: UnpaidUsage,
                   outcomes: ChallengeOutcomes) -> UsageTotals:
    """``totals`` without the unpaid usage, carrying the challenge counts (pure, integers)."""
    available = max(0, totals.available_gpu_milliseconds - unpaid.available_gpu_milliseconds)
    busy = max(0, totals.busy_gpu_milliseconds - unpaid.busy_gpu_milliseconds)
    energy = max(0, totals.energy_millijoules - unpaid.energy_millijoules)
    span_ms = (totals.period_end_ms - terms.start_ms) * terms.gpu_count
    return replace(
        totals,
        available_gpu_seconds=available // 1000,
        available_gpu_milliseconds=available,
        busy_gpu_seconds=busy // 1000 if unpaid.busy_gpu_milliseconds else totals.busy_gpu_seconds,
        busy_gpu_milliseconds=busy,
        energy_millijoules=energy,
        carbon_milligrams=energy * terms.grid_intensity_g_per_kwh // _CARBON_DIVISOR,
        uptime_bps=min(BPS, available * BPS // span_ms) if span_ms > 0 else 0,
        challenges_passed=outcomes.passed,
        challenges_failed=outcomes.failed,
    )
