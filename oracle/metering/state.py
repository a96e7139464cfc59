"""The metering state of one rental: everything the core needs to go on from where it stopped.

Pure data, bounded per rental: per GPU its last sample, the open runs (idle-busy, phantom
load), the open energy-check window; per rental the running totals, the open SLA window, the
fault-aggregation window, and the faults so far (at most one per kind and window). No sample
history. ``to_bytes`` is canonical JSON (sorted keys, integers and text only), so the same
state always serializes to the same bytes and a checkpoint round-trips exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields

from oracle.errors import MeteringError
from oracle.metering.faults import Fault, FaultKind

STATE_VERSION = 2
#: Version 1 states predate ``foreign_process_count``: their ``last`` samples get a 0 for it.
_UPGRADABLE = (1,)


@dataclass(slots=True)
class GpuState:
    """One metered GPU. ``last`` is its last kept sample as the tuple of ``SAMPLE_FIELDS``."""

    last: tuple[int, ...] | None = None
    #: Its last sample time (the rental start until it reports): silence is measured from here.
    last_t_ms: int = 0
    silence_reported: bool = False
    #: Utilization at idle power since this time (None: not in such a run), for this long.
    idle_busy_start_ms: int | None = None
    idle_busy_ms: int = 0
    #: Busy power at no utilization since this time, for this long.
    phantom_start_ms: int | None = None
    phantom_ms: int = 0
    #: The open energy-check window: index, raw counter mJ, integrated uJ, intervals.
    win: int | None = None
    win_counter_mj: int = 0
    win_integrated_uj: int = 0
    win_intervals: int = 0
    #: Its last ``replay_stretch_samples`` power readings (mW), oldest first.
    recent_power_mw: list[int] = field(default_factory=list)


@dataclass(slots=True)
class MeterState:
    """The state of one rental's meter after some prefix of its telemetry."""

    #: Metered GPUs by index (rented GPUs the telemetry lists; set at the first feed).
    gpus: dict[int, GpuState] = field(default_factory=dict)
    configured: bool = False
    #: Rented GPUs the telemetry does not list (GPU_MISSING; downtime).
    missing_gpus: int = 0
    #: Newest included sample time of any GPU (None before the first).
    now_ms: int | None = None
    first_ms: int | None = None
    available_ms: int = 0
    busy_pct_ms: int = 0
    energy_mj: int = 0
    integrated_uj: int = 0
    sample_count: int = 0
    excluded_count: int = 0
    fault_flags: int = 0
    faults: list[Fault] = field(default_factory=list)
    #: Fault aggregation: the window of the newest fault and the kinds already filed in it.
    fault_window: int = -1
    fault_mask: int = 0
    #: The open SLA window (index from the rental start) and its available GPU-ms.
    sla_window: int = 0
    sla_available_ms: int = 0
    #: No GPU can have been silent past the SLA gap before this time (a lower bound).
    gap_check_ms: int = 0
    #: Fingerprints of recent power stretches (insertion order = age), to spot copied telemetry.
    power_stretches: dict[int, None] = field(default_factory=dict)
    #: Range metering (unpaid challenge periods): intervals ending before this are not accrued.
    accrue_from_ms: int | None = None

    # -- serialization ----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        data = {name.name: getattr(self, name.name) for name in fields(self)}
        data["gpus"] = {str(index): _gpu_to_json(gpu) for index, gpu in self.gpus.items()}
        data["faults"] = [[int(f.kind), f.start_ms, f.end_ms, f.detail, f.gpu] for f in self.faults]
        data["power_stretches"] = list(self.power_stretches)
        data["version"] = STATE_VERSION
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                          allow_nan=False).encode("ascii")

    @classmethod
    def from_bytes(cls, body: bytes) -> "MeterState":
        try:
            data = json.loads(body)
            version = data.pop("version")
            if version != STATE_VERSION and version not in _UPGRADABLE:
                raise MeteringError("meter state of another version")
            gpus = {int(index): _gpu_from_json(value, version) for index, value in data.pop("gpus").items()}
            faults = [Fault(FaultKind(k), s, e, d, g) for k, s, e, d, g in data.pop("faults")]
            stretches = dict.fromkeys(data.pop("power_stretches"))
            return cls(gpus=gpus, faults=faults, power_stretches=stretches, **data)
        except (ValueError, KeyError, TypeError) as exc:
            raise MeteringError(f"unreadable meter state: {exc}") from exc


def _gpu_to_json(gpu: GpuState) -> dict:
    data = {name.name: getattr(gpu, name.name) for name in fields(gpu)}
    data["last"] = None if gpu.last is None else list(gpu.last)
    return data


def _gpu_from_json(data: dict, version: int = STATE_VERSION) -> GpuState:
    last = data.pop("last")
    if last is not None and version == 1:
        last = [*last, 0]  # foreign_process_count
    return GpuState(last=None if last is None else tuple(last), **data)
