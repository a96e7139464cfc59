"""Replay of a telemetry CSV in the shared format (``shared/telemetry/h100_trace_a.csv``).

The replay keeps every integer of the file and the original spacing of the samples; only the
timeline is moved so that it ends near the wall clock instead of in the past.

Timeline mapping. Let ``D`` be the trace's duration (last ``t`` minus first, in ms), ``s`` the
speed and ``start`` the wall clock at the first ``read()``. Sample ``i`` of the file, at
``rel_i = t_i - t_0`` ms into the trace, is released by the ``read()`` that comes at or after
``start + rel_i / s`` and is stamped

    t_ms = base + rel_i,   base = start - max(0, D - D / s)

so the spacing between samples is the file's (metering sees the trace's 85 s of GPU time even
when it is replayed in 1.7 s), and no sample is ever stamped in the future: at wall time
``start + w`` the released samples have ``rel <= w * s``, so
``t_ms <= start - D + D/s + w*s <= start + w`` for every ``w <= D/s``, with equality for the
last sample (the back-dating is exactly what makes the last sample land on "now").
This matters because nodes refuse samples whose timestamps are ahead of their own clock; a replay
that kept ``t_ms = start + rel`` at speed 50 would stamp the last sample 83 s in the future.
At ``s <= 1`` no back-dating is needed (``base = start``).

The back-dated start has a price: a fast replay begun right at a rental's start stamps its first
samples before the rental began, which nodes also refuse. ``not_before_ms`` (the rental's start)
caps the back-dating: ``base = max(start - (D - D/s), not_before_ms)``, and a sample is released
only once both its replay time has come and ``t_ms <= now``. Spacing is still the file's; the
replay then runs as fast as the two limits allow (real time once it has caught up with "now").
Compressing 85 s of GPU time into less than 85 s of wall clock *and* keeping every sample after
the rental's start and before "now" is impossible; this option picks the honest side.

``period_ms`` subsamples: of the samples in each ``period_ms`` window of the trace (counted from
its first sample), only the first is kept. ``period_ms=1000`` turns the 10 Hz capture into the
agent's 1 Hz rate.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from oracle.errors import TelemetryError
from oracle.telemetry.samples import GpuInfo, Sample, read_trace_csv

DEFAULT_NAME = "NVIDIA H100 80GB HBM3"
DEFAULT_POWER_LIMIT_MW = 700_000


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class ReplaySource:
    """Replays one GPU's trace as GPU ``gpu``. ``read()`` returns the samples now due."""

    def __init__(
        self,
        csv_path: str | Path,
        speed: float = 1.0,
        gpu: int = 0,
        *,
        period_ms: int | None = None,
        clock_ms: Callable[[], int] = _wall_clock_ms,
        uuid: str | None = None,
        name: str | None = None,
        power_limit_mw: int | None = None,
        not_before_ms: int | None = None,
    ) -> None:
        if not speed > 0:
            raise TelemetryError(f"replay speed must be positive, got {speed}")
        if period_ms is not None and period_ms <= 0:
            raise TelemetryError(f"period_ms must be positive, got {period_ms}")
        path = Path(csv_path)
        trace = read_trace_csv(path, gpu)
        if not trace:
            raise TelemetryError(f"{path} holds no samples")
        if period_ms is not None:
            trace = subsample(trace, period_ms)
        for earlier, later in zip(trace, trace[1:]):
            if later.t_ms <= earlier.t_ms:
                raise TelemetryError(f"{path}: timestamps are not strictly increasing")
        static = _sidecar_static(path)
        self._gpu = GpuInfo(
            index=gpu,
            uuid=uuid or f"GPU-replay-{path.stem}-{gpu}",
            name=name or static.get("name") or DEFAULT_NAME,
            power_limit_mw=int(
                power_limit_mw or static.get("power_limit_mw") or DEFAULT_POWER_LIMIT_MW
            ),
        )
        self._trace = trace
        self._t0_ms = trace[0].t_ms
        self.duration_ms = trace[-1].t_ms - trace[0].t_ms
        self.speed = speed
        self._clock_ms = clock_ms
        self.not_before_ms = not_before_ms
        self._start_ms: int | None = None
        self._base_ms = 0
        self._next = 0

    def gpus(self) -> list[GpuInfo]:
        return [self._gpu]

    def start(self, now_ms: int | None = None) -> None:
        """Pin the replay's start (done by the first ``read()`` if not called)."""
        start = self._clock_ms() if now_ms is None else now_ms
        self._start_ms = start
        self._base_ms = start - backdate_ms(self.duration_ms, self.speed)
        if self.not_before_ms is not None:
            self._base_ms = max(self._base_ms, self.not_before_ms)

    def read(self) -> list[Sample]:
        now_ms = self._clock_ms()
        if self._start_ms is None:
            self.start(now_ms)
        assert self._start_ms is not None
        # Trace time due by now: elapsed wall time times speed (floor, in integer ms).
        due_rel_ms = int((now_ms - self._start_ms) * self.speed)
        # Never in the future (only binds when not_before_ms moved the base forward).
        due_rel_ms = min(due_rel_ms, now_ms - self._base_ms)
        out = []
        trace = self._trace
        while self._next < len(trace) and trace[self._next].t_ms - self._t0_ms <= due_rel_ms:
            s = trace[self._next]
            out.append(_restamp(s, self._base_ms + (s.t_ms - self._t0_ms)))
            self._next += 1
        return out

    @property
    def finished(self) -> bool:
        """True once every sample of the trace has been returned."""
        return self._next >= len(self._trace)

    def close(self) -> None:
        pass


def backdate_ms(duration_ms: int, speed: float) -> int:
    """How far before the replay's start its first sample is stamped: ``max(0, D - D/s)``."""
    if speed <= 1:
        return 0
    return duration_ms - int(duration_ms / speed)


def subsample(samples: list[Sample], period_ms: int) -> list[Sample]:
    """Keep the first sample of each ``period_ms`` window, counted from the first sample."""
    out = []
    last_bucket = -1
    t0 = samples[0].t_ms
    for s in samples:
        bucket = (s.t_ms - t0) // period_ms
        if bucket != last_bucket:
            out.append(s)
            last_bucket = bucket
    return out


def _restamp(s: Sample, t_ms: int) -> Sample:
    return Sample(s.gpu, t_ms, s.energy_mj, s.power_mw, s.util_gpu_pct, s.util_mem_pct,
                  s.mem_used_mib, s.temp_c)


def _sidecar_static(csv_path: Path) -> dict:
    """The ``static`` block of ``<trace>.json`` beside the CSV, when there is one."""
    sidecar = csv_path.with_suffix(".json")
    try:
        return dict(json.loads(sidecar.read_text()).get("static") or {})
    except (OSError, ValueError, AttributeError):
        return {}
