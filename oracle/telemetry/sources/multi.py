"""Several sources read as one host (e.g. eight replayed GPUs for a benchmark or a demo)."""

from __future__ import annotations

from typing import Sequence

from oracle.errors import TelemetryError
from oracle.telemetry.samples import GpuInfo, Sample


class MultiSource:
    """Reads each source in turn; their GPU indices must not collide."""

    def __init__(self, sources: Sequence[object]) -> None:
        if not sources:
            raise TelemetryError("MultiSource needs at least one source")
        self._sources = list(sources)
        indices = [g.index for s in self._sources for g in s.gpus()]  # type: ignore[attr-defined]
        if len(set(indices)) != len(indices):
            raise TelemetryError(f"GPU indices collide across sources: {sorted(indices)}")

    def gpus(self) -> list[GpuInfo]:
        gpus = [g for s in self._sources for g in s.gpus()]  # type: ignore[attr-defined]
        return sorted(gpus, key=lambda g: g.index)

    def read(self) -> list[Sample]:
        out: list[Sample] = []
        for source in self._sources:
            out.extend(source.read())  # type: ignore[attr-defined]
        return out

    @property
    def finished(self) -> bool:
        return all(getattr(s, "finished", False) for s in self._sources)

    def close(self) -> None:
        for source in self._sources:
            close = getattr(source, "close", None)
            if close is not None:
                close()
