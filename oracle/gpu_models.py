"""The GPU models gpurent knows: one row per model, the single source of their physics.

``name`` is the model as NVML reports it (``nvmlDeviceGetName``), which is also an offer's
``gpuModel`` (UTF-8, zero-padded to bytes32). The power limit and memory are the board's
defaults; metering bounds power and energy by them, deployment registers them on chain
(``GpuRentMarket.setGpuModel``), and proof-of-GPU sizes its challenges by the memory.
``source`` says where the numbers come from.
"""

from __future__ import annotations

from dataclasses import dataclass

from oracle.errors import ConfigError


@dataclass(frozen=True, slots=True)
class GpuModel:
    name: str
    power_limit_w: int
    memory_mib: int
    source: str

    @property
    def power_limit_mw(self) -> int:
        return self.power_limit_w * 1000


GPU_MODELS: tuple[GpuModel, ...] = (
    GpuModel("NVIDIA H100 80GB HBM3", 700, 81_559,
             "measured: NVML on the H100 of oracle/data/traces/h100_trace_a.json"),
    GpuModel("NVIDIA H200", 700, 143_771, "published: NVIDIA H200 SXM datasheet (700 W, 141 GB)"),
    GpuModel("NVIDIA A100-SXM4-80GB", 400, 81_920, "published: NVIDIA A100 datasheet (400 W SXM, 80 GB)"),
    GpuModel("NVIDIA L40S", 350, 46_068, "published: NVIDIA L40S datasheet (350 W, 48 GB)"),
    GpuModel("NVIDIA GeForce RTX 4090", 450, 24_564, "published: NVIDIA RTX 4090 specifications (450 W, 24 GB)"),
    GpuModel("NVIDIA L4", 72, 23_034, "published: NVIDIA L4 datasheet (72 W, 24 GB)"),
)

_BY_NAME = {model.name: model for model in GPU_MODELS}


def gpu_model(name: str) -> GpuModel:
    """The row for ``name`` (exact NVML name); ConfigError naming the known models otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(sorted(_BY_NAME))
        raise ConfigError(f"unknown GPU model {name!r}; known models: {known}") from None
