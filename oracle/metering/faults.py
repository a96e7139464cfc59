"""Fault kinds (the numbering of docs/protocol.md) and the metered fault record."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class FaultKind(IntEnum):
    """``uint8 kind`` of a FaultReport, and the bit index in ``faultFlags``."""

    #: Downtime beyond the offer's SLA (uptime per window below ``minUptimeBps``, or one GPU
    #: silent longer than ``maxGapSeconds``). Shorter gaps are unpaid time, not a fault.
    DOWNTIME = 1
    #: The energy counter disagrees with integrated power beyond the tolerance.
    ENERGY_MISMATCH = 2
    #: Impossible telemetry: power above the model's limit, a counter faster than the limit
    #: allows, busy-level power with no kernel running, conflicting readings.
    COUNTER_PHYSICS = 3
    #: Utilization at idle power: what a spinning or polling workload of the RENTER shows. A
    #: usage flag in ``faultFlags`` only; never a FaultReport, never slashed.
    IDLE_POWER_BUSY = 4
    #: A proof-of-GPU challenge failed or went unanswered (judged by the challenge protocol).
    CHALLENGE_FAILED = 5
    #: The telemetry reports fewer GPUs (of the rented model) than the rental rented.
    GPU_MISSING = 6
    #: The GPU ran a process outside the renter's container (issue 10).
    FOREIGN_PROCESS = 7


#: Kinds that become FaultReports and may be slashed (everything but the usage flag).
SLASHABLE: frozenset[FaultKind] = frozenset(FaultKind) - {FaultKind.IDLE_POWER_BUSY}


@dataclass(frozen=True, slots=True)
class Fault:
    """One metered fault: what, over which span of unix milliseconds, on which GPU.

    ``end_ms`` is the moment the fault became detectable (the sample that proved it).
    ``detail`` is a deterministic, integer-only text (it goes into the evidence hash).
    """

    kind: FaultKind
    start_ms: int
    end_ms: int
    detail: str
    gpu: int = 0

    @property
    def flag(self) -> int:
        return 1 << int(self.kind)

    @property
    def slashable(self) -> bool:
        return self.kind in SLASHABLE
