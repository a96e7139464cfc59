"""Where the unit tests find the shared H100 traces: ``../shared/telemetry`` beside the checkout,
or ``shared/telemetry`` inside it."""

from __future__ import annotations

from pathlib import Path

from oracle.traces import TRACE_A, TRACE_DIR

REPO = Path(__file__).resolve().parents[2]
SHARED = TRACE_DIR
