"""Telemetry sources. Each has ``.gpus() -> list[GpuInfo]`` (static facts, read once),
``.read() -> list[Sample]`` (the samples due now, possibly none), ``.finished`` (a finite source
has run out) and ``.close()``.
"""

from oracle.telemetry.sources.multi import MultiSource
from oracle.telemetry.sources.nvml import NvmlSource
from oracle.telemetry.sources.replay import ReplaySource
from oracle.telemetry.sources.simulated import LoadPhase, SimulatedSource, parse_load_script

__all__ = [
    "LoadPhase",
    "MultiSource",
    "NvmlSource",
    "ReplaySource",
    "SimulatedSource",
    "parse_load_script",
]
