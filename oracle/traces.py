"""The real H100 NVML traces shipped with the package (``oracle/data/traces``).

The demo replays them and the tests meter them; ``$GPURENT_TRACE_DIR`` points elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

TRACE_DIR = Path(os.environ.get("GPURENT_TRACE_DIR") or Path(__file__).resolve().parent / "data" / "traces")
TRACE_A = TRACE_DIR / "h100_trace_a.csv"
TRACE_TRAIN = TRACE_DIR / "h100_trace_train.csv"
