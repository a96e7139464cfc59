"""The metered fault record. ``FaultKind`` and ``SLASHABLE`` live in :mod:`oracle.protocol`."""

from __future__ import annotations

from dataclasses import dataclass

from oracle.protocol import SLASHABLE, FaultKind

__all__ = ["SLASHABLE", "Fault", "FaultKind"]


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
