"""Where the unit tests find the shared H100 traces: ``../shared/telemetry`` beside the checkout,
or ``shared/telemetry`` inside it."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = next(
    (p for p in (REPO.parent / "shared" / "telemetry", REPO / "shared" / "telemetry")
     if p.is_dir()),
    REPO.parent / "shared" / "telemetry",
)
TRACE_A = SHARED / "h100_trace_a.csv"
