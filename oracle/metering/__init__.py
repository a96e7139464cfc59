"""The pure metering core: samples in, integer usage totals and faults out (see ``core``)."""

from oracle.metering.core import MILLIJOULES_PER_KWH, UsageTotals, meter_samples
from oracle.metering.faults import Fault, FaultKind
from oracle.metering.grid import GridIntensitySource, StaticGridIntensity
from oracle.metering.policy import DEFAULT_POLICY, MeteringPolicy

__all__ = [
    "DEFAULT_POLICY",
    "MILLIJOULES_PER_KWH",
    "Fault",
    "FaultKind",
    "GridIntensitySource",
    "MeteringPolicy",
    "StaticGridIntensity",
    "UsageTotals",
    "meter_samples",
]
