"""The pure metering core: samples in, integer usage totals and faults out (see ``core``)."""

from oracle.metering.core import MILLIJOULES_PER_KWH, UsageTotals, feed, meter_samples, new_state, totals
from oracle.metering.faults import SLASHABLE, Fault, FaultKind
from oracle.metering.grid import GridIntensitySource, StaticGridIntensity
from oracle.metering.policy import DEFAULT_POLICY, MeteringPolicy, MeterTerms
from oracle.metering.state import MeterState

__all__ = [
    "DEFAULT_POLICY",
    "MILLIJOULES_PER_KWH",
    "SLASHABLE",
    "Fault",
    "FaultKind",
    "GridIntensitySource",
    "MeterState",
    "MeterTerms",
    "MeteringPolicy",
    "StaticGridIntensity",
    "UsageTotals",
    "feed",
    "meter_samples",
    "new_state",
    "totals",
]
