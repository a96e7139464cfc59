"""Synthetic telemetry for metering tests: a GPU whose counter agrees with its power."""

from __future__ import annotations

from typing import Iterable

from oracle.telemetry.samples import GpuInfo, Sample

T0_MS = 1_795_743_108_000
LIMIT_MW = 700_000
IDLE_MW = 125_000
LOAD_MW = 690_000


def gpu_info(index: int = 0, limit_mw: int = LIMIT_MW) -> GpuInfo:
    return GpuInfo(index=index, uuid=f"GPU-test-{index}", name="test GPU", power_limit_mw=limit_mw)


def sample(gpu: int, t_ms: int, energy_mj: int, power_mw: int, util: int) -> Sample:
    return Sample(gpu=gpu, t_ms=t_ms, energy_mj=energy_mj, power_mw=power_mw,
                  util_gpu_pct=util, util_mem_pct=util // 3, mem_used_mib=1100, temp_c=50)


def steady(
    steps: Iterable[tuple[int, int, int]],
    gpu: int = 0,
    t0_ms: int = T0_MS,
    energy0_mj: int = 1_000_000,
    first_power_mw: int = IDLE_MW,
) -> list[Sample]:
    """Samples after each ``(interval_ms, power_mw, util_pct)`` step, with an energy counter
    that rises by exactly power x interval (the power reading describes the interval)."""
    t, energy = t0_ms, energy0_mj
    out = [sample(gpu, t, energy, first_power_mw, 0)]
    for interval_ms, power_mw, util in steps:
        t += interval_ms
        energy += power_mw * interval_ms // 1000
        out.append(sample(gpu, t, energy, power_mw, util))
    return out


def every_second(seconds: int, power_mw: int, util: int) -> list[tuple[int, int, int]]:
    return [(1000, power_mw, util)] * seconds
