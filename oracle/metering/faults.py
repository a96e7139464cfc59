"""Fault kinds (the numbering of docs/protocol.md) and the metered fault record."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class FaultKind(IntEnum):
    """``uint8 kind`` of a FaultReport, and the bit index in ``faultFlags``."""

    DOWNTIME = 1
    ENERGY_MISMATCH = 2
    COUNTER_PHYSICS = 3
    IDLE_POWER_BUSY = 4


@dataclass(frozen=True, slots=True)
class Fault:
    """One metered fault: what, over which span of unix milliseconds, on which GPU.

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
