"""A simulated H100 with a scripted load, for demos on machines without a GPU.

The load script is a list of phases (``LoadPhase``: seconds, utilization, board power, memory
utilization, memory used); presets carry the levels read off the real H100 trace
(``shared/telemetry/README.md``): idle 125 W, bf16 matmul 695 W at 99 %, memory-bound copies
398 W, transformer training 520 W at 90 %, evaluation 640 W. ``parse_load_script("idle:10,
train:40,idle:5")`` builds one from text.

Each ``read()`` emits one sample per simulated GPU at the clock's time. Power follows the phase
level through a first-order lag (NVML's power is a 1 s average), utilization and power carry
seeded noise, temperature follows power slowly, and the energy counter integrates the reported
power exactly in integer millijoules, so counter energy and integrated power agree the way they
do on the real card. Everything is integer arithmetic driven by a ``random.Random(seed)``: the
same seed, script and read times give the same samples.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from oracle.errors import TelemetryError
from oracle.telemetry.samples import GpuInfo, Sample

SIMULATED_NAME = "NVIDIA H100 80GB HBM3 (simulated)"
POWER_LIMIT_MW = 700_000
IDLE_POWER_MW = 125_000
IDLE_MEM_MIB = 1_100
AMBIENT_TEMP_C = 30


@dataclass(frozen=True)
class LoadPhase:
    """One phase of scripted load on every simulated GPU."""

    seconds: int
    util_gpu_pct: int
    power_mw: int
    util_mem_pct: int = 0
    mem_used_mib: int = IDLE_MEM_MIB
    kind: str = "custom"

    def __post_init__(self) -> None:
        if self.seconds <= 0:
            raise TelemetryError(f"phase {self.kind}: seconds must be positive")
        if not (0 <= self.util_gpu_pct <= 100 and 0 <= self.util_mem_pct <= 100):
            raise TelemetryError(f"phase {self.kind}: utilization must be 0..100")
        if not 0 < self.power_mw <= POWER_LIMIT_MW:
            raise TelemetryError(f"phase {self.kind}: power must be in (0, {POWER_LIMIT_MW}] mW")


PRESETS: dict[str, tuple[int, int, int, int]] = {
    # kind: (util_gpu_pct, power_mw, util_mem_pct, mem_used_mib)
    "idle": (0, IDLE_POWER_MW, 0, IDLE_MEM_MIB),
    "matmul": (99, 695_000, 60, 3_200),
    "copy": (100, 398_000, 100, 9_300),
    "train": (90, 520_000, 45, 24_000),
    "eval": (97, 640_000, 40, 20_000),
}

DEMO_SCRIPT = "idle:5,train:40,idle:4,train:40,eval:15,idle:6"
"""The shape of ``shared/telemetry/h100_trace_train.csv``."""


def phase(kind: str, seconds: int) -> LoadPhase:
    try:
        util, power, util_mem, mem = PRESETS[kind]
    except KeyError:
        raise TelemetryError(f"unknown load {kind!r}; known: {', '.join(PRESETS)}") from None
    return LoadPhase(seconds, util, power, util_mem, mem, kind)


def parse_load_script(text: str) -> list[LoadPhase]:
    """``"idle:10,matmul:25"`` -> phases. Kinds are the keys of ``PRESETS``."""
    phases = []
    for part in text.split(","):
        kind, sep, seconds = part.strip().partition(":")
        if not sep or not seconds.strip().isdigit():
            raise TelemetryError(f"load script item {part!r} is not KIND:SECONDS")
        phases.append(phase(kind.strip(), int(seconds)))
    if not phases:
        raise TelemetryError("empty load script")
    return phases


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class SimulatedSource:
    """``gpu_count`` H100-like GPUs running ``load_script`` (repeated when ``repeat``)."""

    def __init__(
        self,
        load_script: Sequence[LoadPhase] | str = DEMO_SCRIPT,
        *,
        seed: int = 0,
        gpu_count: int = 1,
        repeat: bool = True,
        clock_ms: Callable[[], int] = _wall_clock_ms,
    ) -> None:
        phases = parse_load_script(load_script) if isinstance(load_script, str) else list(load_script)
        if not phases:
            raise TelemetryError("empty load script")
        if gpu_count < 1:
            raise TelemetryError("gpu_count must be at least 1")
        self._phases = phases
        self._script_ms = sum(p.seconds for p in phases) * 1000
        self._repeat = repeat
        self._clock_ms = clock_ms
        self._rng = random.Random(seed)
        self._gpus = [
            GpuInfo(i, f"GPU-sim-{seed:08x}-{i:04d}", SIMULATED_NAME, POWER_LIMIT_MW)
            for i in range(gpu_count)
        ]
        self._start_ms: int | None = None
        self._last_ms: int | None = None
        # per GPU: [power_mw (smoothed), energy_mj, energy remainder (mW*ms), temp in mC]
        self._state = [
            [IDLE_POWER_MW, 1_000_000 * (i + 1), 0, AMBIENT_TEMP_C * 1000 + 10_000]
            for i in range(gpu_count)
        ]
        self._finished = False

    def gpus(self) -> list[GpuInfo]:
        return list(self._gpus)

    def _phase_at(self, elapsed_ms: int) -> LoadPhase | None:
        if elapsed_ms >= self._script_ms:
            if not self._repeat:
                return None
            elapsed_ms %= self._script_ms
        for p in self._phases:
            if elapsed_ms < p.seconds * 1000:
                return p
            elapsed_ms -= p.seconds * 1000
        return None  # unreachable

    def read(self) -> list[Sample]:
        now_ms = self._clock_ms()
        if self._start_ms is None:
            self._start_ms = now_ms
        if self._last_ms is not None and now_ms <= self._last_ms:
            return []
        dt_ms = 0 if self._last_ms is None else now_ms - self._last_ms
        self._last_ms = now_ms
        current = self._phase_at(now_ms - self._start_ms)
        if current is None:
            self._finished = True
            return []
        rng = self._rng
        # Lag: the 1 s power average closes ~63 % of the gap per second (capped at all of it).
        blend_permille = min(1000, dt_ms * 632 // 1000)
        samples = []
        for gpu, state in zip(self._gpus, self._state):
            power, energy, remainder, temp_mc = state
            target = current.power_mw + rng.randint(-4_000, 4_000)
            if current.util_gpu_pct > 0:
                target += rng.randint(-15_000, 15_000)
            power = power + (target - power) * blend_permille // 1000
            power = max(50_000, min(POWER_LIMIT_MW, power))
            # Energy counter: exact integer integral of reported power (mW * ms = uJ).
            total = remainder + power * dt_ms
            energy += total // 1000
            remainder = total % 1000
            # Temperature settles at ambient + power/10 W per degree, slowly.
            target_mc = AMBIENT_TEMP_C * 1000 + power // 10
            temp_mc += (target_mc - temp_mc) * min(1000, dt_ms // 20) // 1000
            util = current.util_gpu_pct
            if util:
                util = max(0, min(100, util + rng.randint(-3, 1)))
            util_mem = current.util_mem_pct
            if util_mem:
                util_mem = max(0, min(100, util_mem + rng.randint(-5, 5)))
            state[:] = [power, energy, remainder, temp_mc]
            samples.append(
                Sample(
                    gpu=gpu.index,
                    t_ms=now_ms,
                    energy_mj=energy,
                    power_mw=power,
                    util_gpu_pct=util,
                    util_mem_pct=util_mem,
                    mem_used_mib=current.mem_used_mib,
                    temp_c=temp_mc // 1000,
                )
            )
        return samples

    @property
    def finished(self) -> bool:
        """True once a non-repeating script has run out."""
        return self._finished

    def close(self) -> None:
        pass
