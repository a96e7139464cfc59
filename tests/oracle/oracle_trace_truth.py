"""Ground truth read off the shared traces' JSON descriptions (integers and Decimals only)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from oracle.telemetry.samples import seconds_text_to_ms


def load_truth(path: Path) -> dict:
    """A trace's JSON description, with every decimal as ``Decimal`` (no floats)."""
    return json.loads(path.read_text(), parse_float=Decimal)


def busy_ground_truth_ms(truth: dict) -> int:
    """Loaded time of a trace: every non-idle phase's length times its duty cycle, in ms."""
    total = Decimal(0)
    for phase in truth["trace"]["phases"]:
        if phase["kind"] == "idle":
            continue
        length_ms = (seconds_text_to_ms(str(phase["end_unix"]))
                     - seconds_text_to_ms(str(phase["start_unix"])))
        total += length_ms * phase["duty"]
    return int(total)
