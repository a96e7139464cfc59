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
from oracle.metering.core import BPS, _CARBON_DIVISOR, UsageTotals, available_bound_s
from oracle.metering.faults import Fault
from oracle.metering.policy import MeterTerms


@dataclass(frozen=True, slots=True)
class ChallengeOutcomes:
    """A rental's challenge record up to some time.

    ``passed``/``failed``: cumulative counts of challenges judged at or before that time
    (``failed`` includes unanswered ones). ``unpaid_intervals``: half-open ``[start_ms, end_ms)``
    spans of unix ms in which no GPU of the rental is paid; ``unpaid_gpu_intervals``:
    ``(gpu_index, start_ms, end_ms)`` spans in which only that GPU (its telemetry index) is not
    paid. A metering interval whose end sample lies in one is not paid (its available time,
    busy time and energy are taken out of the report's totals).
    """

    passed: int = 0
    failed: int = 0
    unpaid_intervals: tuple[tuple[int, int], ...] = ()
    unpaid_gpu_intervals: tuple[tuple[int, int, int], ...] = ()

    def __post_init__(self) -> None:
        for name in ("passed", "failed"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise MeteringError(f"ChallengeOutcomes.{name} must be a non-negative int, got {value!r}")
        for span in self.unpaid_intervals:
            if (len(span) != 2 or any(type(v) is not int for v in span) or span[0] < 0
                    or span[1] <= span[0]):
                raise MeteringError(f"unpaid interval {span!r} is not [start_ms, end_ms) with start < end")
        for span in self.unpaid_gpu_intervals:
            if (len(span) != 3 or any(type(v) is not int for v in span) or min(span) < 0
                    or span[2] <= span[1]):
                raise MeteringError(f"unpaid GPU interval {span!r} is not (gpu, start_ms, end_ms) with start < end")

    def spans_by_gpu(self, gpus: Iterable[int], lo_ms: int, hi_ms: int) -> dict[int | None, list[tuple[int, int]]]:
        """Disjoint unpaid spans clipped to ``[lo_ms, hi_ms]``: under None for the whole rental
        when no span names a GPU, else per GPU (a rental-wide span applies to each of ``gpus``)."""
        if not self.unpaid_gpu_intervals:
            return {None: merge_intervals(self.unpaid_intervals, lo_ms, hi_ms)}
        per_gpu: dict[int | None, list[tuple[int, int]]] = {}
        for gpu in sorted(set(gpus)):
            mine = [(s, e) for g, s, e in self.unpaid_gpu_intervals if g == gpu]
            spans = merge_intervals([*mine, *self.unpaid_intervals], lo_ms, hi_ms)
            if spans:
                per_gpu[gpu] = spans
        return per_gpu


@runtime_checkable
class ChallengeLedger(Protocol):
    """Per-rental challenge outcomes, as the proof-of-GPU protocol judged them."""

    def outcomes(self, rental_id: int, up_to_ms: int) -> ChallengeOutcomes:
        """Challenges of ``rental_id`` judged at or before ``up_to_ms`` (a report's period end)."""
        ...

    def faults(self, rental_id: int, up_to_ms: int) -> list[Fault]:
        """The CHALLENGE_FAILED faults due by ``up_to_ms``, at most one per slash window, each
        ending (``end_ms``) when it became due: metering files them among its own, by end time."""
        ...

    def end_fault(self, rental_id: int) -> Fault | None:
        """The CHALLENGE_FAILED fault of a failed end challenge (at the rental's end), once the
        quorum decided it; None otherwise. It is never part of a usage report."""
        ...


class NoChallenges:
    """The ledger of a node without proof-of-GPU: nothing passed, nothing failed, all paid."""

    def outcomes(self, rental_id: int, up_to_ms: int) -> ChallengeOutcomes:
        return ChallengeOutcomes()

    def faults(self, rental_id: int, up_to_ms: int) -> list[Fault]:
        return []

    def end_fault(self, rental_id: int) -> Fault | None:
        return None


def with_challenge_faults(totals: UsageTotals, faults: Iterable[Fault]) -> UsageTotals:
    """``totals`` with the ledger's faults filed among metering's by end time (a stable merge:
    metering's own order is kept among equal times, the ledger's come after them). Every fault
    ending by the report's period end is known at that report, so the list only grows at its
    end as reports advance, and fault ids stay stable."""
    extra = sorted(faults, key=lambda f: (f.end_ms, f.gpu, f.start_ms, f.detail))
    if not extra:
        return totals
    merged = sorted([*((f, 0) for f in totals.faults), *((f, 1) for f in extra)], key=lambda x: (x[0].end_ms, x[1]))
    flags = totals.fault_flags
    for fault in extra:
        flags |= fault.flag
    return replace(totals, faults=tuple(f for f, _ in merged), fault_flags=flags)


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
    energy = min(max(0, totals.energy_millijoules - unpaid.energy_millijoules), totals.energy_millijoules)
    span_ms = (totals.period_end_ms - terms.start_ms) * terms.gpu_count
    return replace(
        totals,
        available_gpu_seconds=min(available // 1000, available_bound_s(terms, totals.period_end_ms)),
        available_gpu_milliseconds=available,
        busy_gpu_seconds=busy // 1000 if unpaid.busy_gpu_milliseconds else totals.busy_gpu_seconds,
        busy_gpu_milliseconds=busy,
        energy_millijoules=energy,
        carbon_milligrams=energy * terms.grid_intensity_g_per_kwh // _CARBON_DIVISOR,
        uptime_bps=min(BPS, available * BPS // span_ms) if span_ms > 0 else 0,
        challenges_passed=outcomes.passed,
        challenges_failed=outcomes.failed,
    )
