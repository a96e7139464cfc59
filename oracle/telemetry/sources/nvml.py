"""Live telemetry from every NVIDIA GPU on the host, through NVML (``nvidia-ml-py``).

What is read, and how often (costs measured on an H100, ``shared/telemetry/h100_trace_a.json``):

- once, at start: device count, UUID, name, enforced power limit;
- every ``read()``: power (1 us), utilization (1 us), memory (6 us), temperature, and the total
  energy counter, which costs about 3.9 ms a call. The energy counter is read at most once per
  ``energy_interval_ms`` per GPU (1 s by default, less 5 % for scheduler jitter); a ``read()``
  that comes sooner reuses the last energy reading, which keeps counter deltas exact.
- never: per-process queries (``nvmlDeviceGetComputeRunningProcesses`` and friends). They are
  not needed for metering and they are the slow, privacy-sensitive calls.

A GPU whose NVML calls fail is skipped for that read and logged (once when it starts failing,
once when it recovers); the other GPUs are still read. The counter is passed through as read:
a drop (driver reload) is the metering core's business, not the agent's.
"""

from __future__ import annotations

import logging
import time
from types import ModuleType
from typing import Callable

from oracle.errors import TelemetryError
from oracle.telemetry.samples import GpuInfo, Sample

log = logging.getLogger(__name__)

MIB = 1024 * 1024
ENERGY_JITTER_PCT = 5


def nvml_gpu_count() -> int:
    """How many GPUs NVML sees on this host (0 without a driver or without ``pynvml``)."""
    try:
        import pynvml
    except ImportError:
        return 0
    try:
        pynvml.nvmlInit()
    except Exception:
        return 0
    try:
        return int(pynvml.nvmlDeviceGetCount())
    except Exception:
        return 0
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class NvmlSource:
    """Samples of every GPU NVML sees. Close it (or use ``with``) to call ``nvmlShutdown``."""

    def __init__(
        self,
        *,
        nvml: ModuleType | None = None,
        clock_ms: Callable[[], int] = _wall_clock_ms,
        energy_interval_ms: int = 1000,
        indices: list[int] | None = None,
    ) -> None:
        if nvml is None:
            import pynvml as nvml  # imported here so the package imports on hosts without it
        self._nvml = nvml
        self._clock_ms = clock_ms
        self._energy_min_gap_ms = energy_interval_ms * (100 - ENERGY_JITTER_PCT) // 100
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            raise TelemetryError(f"NVML is not available: {exc}") from exc
        self._open = True
        try:
            count = nvml.nvmlDeviceGetCount()
            wanted = range(count) if indices is None else indices
            self._handles: dict[int, object] = {}
            infos = []
            for index in wanted:
                if not 0 <= index < count:
                    raise TelemetryError(f"GPU {index} does not exist (NVML sees {count})")
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                self._handles[index] = handle
                infos.append(
                    GpuInfo(
                        index=index,
                        uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                        name=_text(nvml.nvmlDeviceGetName(handle)),
                        power_limit_mw=int(nvml.nvmlDeviceGetEnforcedPowerLimit(handle)),
                    )
                )
        except nvml.NVMLError as exc:
            self.close()
            raise TelemetryError(f"NVML could not describe the GPUs: {exc}") from exc
        except BaseException:
            self.close()
            raise
        if not infos:
            self.close()
            raise TelemetryError("NVML sees no GPU")
        self._gpus = infos
        # index -> (t_ms of the last energy read, value)
        self._energy: dict[int, tuple[int, int]] = {}
        self._failing: set[int] = set()

    def gpus(self) -> list[GpuInfo]:
        return list(self._gpus)

    def read(self) -> list[Sample]:
        """One sample per healthy GPU, each stamped right after its own readings."""
        nvml = self._nvml
        samples = []
        for index, handle in self._handles.items():
            try:
                now_ms = self._clock_ms()
                last = self._energy.get(index)
                if last is None or now_ms - last[0] >= self._energy_min_gap_ms:
                    energy_mj = int(nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
                    if last is not None and energy_mj < last[1]:
                        log.warning(
                            "GPU %d energy counter dropped from %d to %d mJ (driver reload?)",
                            index, last[1], energy_mj,
                        )
                    self._energy[index] = (now_ms, energy_mj)
                else:
                    energy_mj = last[1]
                power_mw = int(nvml.nvmlDeviceGetPowerUsage(handle))
                util = nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                temp_c = int(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
                sample = Sample(
                    gpu=index,
                    t_ms=self._clock_ms(),
                    energy_mj=energy_mj,
                    power_mw=power_mw,
                    util_gpu_pct=int(util.gpu),
                    util_mem_pct=int(util.memory),
                    mem_used_mib=int(memory.used) // MIB,
                    temp_c=temp_c,
                )
            except nvml.NVMLError as exc:
                if index not in self._failing:
                    self._failing.add(index)
                    log.error("GPU %d: NVML read failed, skipping it until it recovers: %s",
                              index, exc)
                else:
                    log.debug("GPU %d: NVML read failed again: %s", index, exc)
                continue
            if index in self._failing:
                self._failing.discard(index)
                log.warning("GPU %d: NVML reads recovered", index)
            samples.append(sample)
        return samples

    @property
    def finished(self) -> bool:
        """A live source never runs out."""
        return False

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError as exc:
                log.warning("nvmlShutdown failed: %s", exc)

    def __enter__(self) -> NvmlSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
