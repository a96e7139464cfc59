"""The pure metering core: samples in, cumulative integer totals and faults out.

No I/O, no clock, no globals, no floats: every honest node that meters the same set of samples
with the same policy gets the same ``UsageTotals`` and so the same report bytes.

Definitions (per GPU, over its samples sorted by time; an *interval* is the span between two
consecutive samples ``a`` and ``b``, and is described by ``b``'s readings, because NVML's
``power_mw`` is a trailing 1-second average and ``util_gpu_pct`` covers the sample period just
ended):

- **Downtime.** An interval longer than ``policy.max_gap_ms`` is downtime: a DOWNTIME fault,
  and nothing else is metered over it (no available, busy or energy time; the renter does not
  pay for time nobody could observe). A GPU that is silent at the start of the period (or since
  ``rental_start_ms``), or since its last sample while others still report, is downtime too.
- **Available.** The sum of the other intervals' lengths in ms, over all GPUs;
  ``available_gpu_seconds = floor(total_ms / 1000)``: floored once over the sum, so it never
  exceeds the truth by a single ms and never decreases when samples are appended. Samples
  missing over a gap of ``g`` ms lower it by ``floor(g / 1000)`` or one second more (the
  rounding of the remainder): cutting 10 s out of a 10 Hz trace lowers it by 10 s, +-1 s.
- **Busy.** ``interval_ms * util_gpu_pct / 100`` summed over intervals whose power is at least
  ``busy_min_power_permille_of_limit`` of the GPU's power limit (floored once, like available).
  Utilization of at least ``idle_busy_min_util_pct`` while power stays below that threshold for
  ``idle_busy_min_duration_ms`` or longer is an IDLE_POWER_BUSY fault (and is never busy).
- **Energy.** The sum of energy-counter deltas. A counter that drops is a driver reload: the
  reading after the drop is the energy since the reload, and it is billed as that interval's
  energy (a lower bound; the energy between the last reading and the reload is lost, in the
  renter's favour). Every interval's energy is capped at what the power limit allows
  (``limit * (1 + margin) * (interval + counter_slack_ms)``); a counter above that is a
  COUNTER_PHYSICS fault and only the cap is billed. Energy is never negative.
- **Integrated energy.** Right-rule integral of ``power_mw`` (the end reading times the interval
  length: on this hardware it is the trailing average over that very interval), in whole mJ.
  Counter and integrated energy are compared per window of ``energy_check_window_ms`` aligned to
  unix time, once the window is closed (a sample at or past its end exists); a difference
  beyond ``energy_tolerance_permille`` and beyond ``energy_tolerance_floor_ms_at_limit`` at the
  power limit is an ENERGY_MISMATCH fault. The still-open last window is not judged yet.
- **Power physics.** A power reading above ``limit * (1 + power_limit_margin_permille/1000)`` is a
  COUNTER_PHYSICS fault.
- **Carbon.** ``floor(energy_mj * g_per_kwh / 3_600_000)`` milligrams (1 kWh = 3.6e9 mJ, and
  grams to milligrams is x1000).
- **Uptime.** ``floor(available_ms * 10000 / (span_ms * gpu_count))`` basis points, where the span
  runs from ``rental_start_ms`` (or the first sample) to the last sample; 0 for an empty span.
- **Arrival order.** Samples are sorted by ``(gpu, t_ms)``; identical duplicates count once.
  Conflicting duplicates (same GPU and time, different readings) are contradictory telemetry:
  a COUNTER_PHYSICS fault, and the smallest reading (field by field, in field order) is kept,
  so the choice does not depend on arrival order (its fault is fixed at that time; one that
  arrives after later samples were metered is the only way a fault lands mid-list).
- **Faults are fixed when detected.** Each offence (a run of consecutive offending samples,
  intervals or windows, or one silence) yields exactly one fault, written down at the moment
  it became detectable and never changed by later telemetry: its ``end_ms`` is that moment
  (the sample that proved it), and a run that goes on adds nothing more. A silence of a GPU
  is detectable at the first sample of any GPU past ``last + max_gap_ms``. Faults are ordered
  by that moment, then GPU, kind and start. So every node holding the telemetry up to the
  proving sample builds the identical FaultReport, and metering more telemetry only appends
  to the fault list: a fault's index (``faultId``) never changes.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from oracle.errors import MeteringError
from oracle.metering.faults import Fault, FaultKind
from oracle.metering.policy import DEFAULT_POLICY, MeteringPolicy
from oracle.telemetry.samples import SAMPLE_FIELDS, GpuInfo, Sample

MILLIJOULES_PER_KWH = 3_600_000_000
#: energy_mj * g_per_kwh * 1000 (mg per g) / MILLIJOULES_PER_KWH
_CARBON_DIVISOR = MILLIJOULES_PER_KWH // 1000
BPS = 10_000


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Cumulative metered usage of a rental, all integers with units in their names."""

    available_gpu_seconds: int
    busy_gpu_seconds: int
    energy_millijoules: int
    integrated_energy_millijoules: int
    carbon_milligrams: int
    uptime_bps: int
    period_start_ms: int
    period_end_ms: int
    faults: tuple[Fault, ...]
    fault_flags: int
    available_gpu_milliseconds: int = 0
    busy_gpu_milliseconds: int = 0
    sample_count: int = 0
    gpu_count: int = 0


@dataclass(slots=True)
class _GpuTotals:
    available_ms: int = 0
    busy_pct_ms: int = 0
    energy_mj: int = 0
    integrated_uj: int = 0
    faults: list[tuple[int, Fault]] = field(default_factory=list)  # (detected_ms, fault)


def _check_int(value: object, what: str) -> int:
    if type(value) is not int:
        raise MeteringError(f"{what} must be an int, got {value!r}")
    return value


def _validate_sample(sample: Sample) -> None:
    if not isinstance(sample, Sample):
        raise MeteringError(f"not a Sample: {sample!r}")
    for name in SAMPLE_FIELDS:
        _check_int(getattr(sample, name), f"sample {name}")
    if sample.t_ms < 0 or sample.energy_mj < 0 or sample.power_mw < 0 or sample.mem_used_mib < 0:
        raise MeteringError(f"negative reading in sample {sample!r}")
    if not 0 <= sample.util_gpu_pct <= 100 or not 0 <= sample.util_mem_pct <= 100:
        raise MeteringError(f"utilization outside 0..100 in sample {sample!r}")


def _sample_key(sample: Sample) -> tuple[int, ...]:
    return tuple(getattr(sample, name) for name in SAMPLE_FIELDS)


class _Detector:
    """Maps "offence known since time x" to the first sample time of any GPU that proves it."""

    def __init__(self, times: Sequence[int]) -> None:
        self._times = times

    def first_after(self, threshold_ms: int) -> int | None:
        i = bisect_right(self._times, threshold_ms)
        return self._times[i] if i < len(self._times) else None


def meter_samples(
    samples: Iterable[Sample],
    gpus: Sequence[GpuInfo],
    policy: MeteringPolicy = DEFAULT_POLICY,
    grid_intensity_g_per_kwh: int = 0,
    *,
    rental_start_ms: int | None = None,
) -> UsageTotals:
    """Meter a rental's samples (any order, duplicates allowed) into cumulative totals.

    ``gpus`` are the rental's GPUs (a GPU that never reports is downtime). ``rental_start_ms``,
    when given, starts the uptime span and the downtime watch there instead of at the first
    sample. Raises ``MeteringError`` for no samples, unknown GPUs, or out-of-domain readings.
    """
    if not isinstance(policy, MeteringPolicy):
        raise MeteringError(f"policy must be a MeteringPolicy, got {policy!r}")
    _check_int(grid_intensity_g_per_kwh, "grid_intensity_g_per_kwh")
    if grid_intensity_g_per_kwh < 0:
        raise MeteringError("grid_intensity_g_per_kwh must not be negative")
    gpu_by_index: dict[int, GpuInfo] = {}
    for gpu in gpus:
        _check_int(gpu.index, "gpu index")
        _check_int(gpu.power_limit_mw, "gpu power_limit_mw")
        if gpu.power_limit_mw <= 0:
            raise MeteringError(f"gpu {gpu.index}: power limit must be positive")
        if gpu.index in gpu_by_index:
            raise MeteringError(f"gpu {gpu.index} listed twice")
        gpu_by_index[gpu.index] = gpu
    if not gpu_by_index:
        raise MeteringError("no GPUs to meter")

    by_gpu: dict[int, list[Sample]] = {index: [] for index in gpu_by_index}
    count = 0
    for sample in samples:
        _validate_sample(sample)
        if sample.gpu not in by_gpu:
            raise MeteringError(f"sample for gpu {sample.gpu}, which is not in the rental")
        by_gpu[sample.gpu].append(sample)
        count += 1
    if count == 0:
        raise MeteringError("no samples to meter")

    faults: list[tuple[int, Fault]] = []
    streams: dict[int, list[Sample]] = {}
    for index, stream in by_gpu.items():
        streams[index] = _dedup(sorted(stream, key=_sample_key), faults)
    times = sorted({s.t_ms for stream in streams.values() for s in stream})
    period_start_ms, period_end_ms = times[0], times[-1]
    if rental_start_ms is not None:
        _check_int(rental_start_ms, "rental_start_ms")
        if rental_start_ms > period_start_ms:
            raise MeteringError(
                f"sample at {period_start_ms} ms precedes the rental start {rental_start_ms} ms"
            )
        span_start_ms = rental_start_ms
    else:
        span_start_ms = period_start_ms
    detector = _Detector(times)

    available_ms = busy_pct_ms = energy_mj = integrated_uj = 0
    for index in sorted(streams):
        totals = _meter_gpu(
            streams[index], gpu_by_index[index], policy, detector, span_start_ms, period_end_ms
        )
        available_ms += totals.available_ms
        busy_pct_ms += totals.busy_pct_ms
        energy_mj += totals.energy_mj
        integrated_uj += totals.integrated_uj
        faults.extend(totals.faults)

    faults.sort(key=lambda item: (item[0], item[1].gpu, int(item[1].kind), item[1].start_ms,
                                  item[1].end_ms, item[1].detail))
    ordered = tuple(fault for _, fault in faults)
    flags = 0
    for fault in ordered:
        flags |= fault.flag
    span_ms = (period_end_ms - span_start_ms) * len(gpu_by_index)
    uptime_bps = min(BPS, available_ms * BPS // span_ms) if span_ms > 0 else 0
    return UsageTotals(
        available_gpu_seconds=available_ms // 1000,
        busy_gpu_seconds=busy_pct_ms // 100_000,
        energy_millijoules=energy_mj,
        integrated_energy_millijoules=integrated_uj // 1000,
        carbon_milligrams=energy_mj * grid_intensity_g_per_kwh // _CARBON_DIVISOR,
        uptime_bps=uptime_bps,
        period_start_ms=period_start_ms,
        period_end_ms=period_end_ms,
        faults=ordered,
        fault_flags=flags,
        available_gpu_milliseconds=available_ms,
        busy_gpu_milliseconds=busy_pct_ms // 100,
        sample_count=sum(len(stream) for stream in streams.values()),
        gpu_count=len(gpu_by_index),
    )


def _dedup(stream: list[Sample], faults: list[tuple[int, Fault]]) -> list[Sample]:
    """Drop identical duplicates; keep the smallest of conflicting ones and record a fault.

    ``stream`` is sorted by ``_sample_key``, so the first sample at each time is the smallest.
    """
    out: list[Sample] = []
    distinct = 1
    for sample in stream:
        if out and out[-1].t_ms == sample.t_ms:
            if sample != previous:
                distinct += 1
            previous = sample
            continue
        if distinct > 1:
            _conflict_fault(out[-1], faults)
        distinct = 1
        previous = sample
        out.append(sample)
    if distinct > 1:
        _conflict_fault(out[-1], faults)
    return out


def _conflict_fault(kept: Sample, faults: list[tuple[int, Fault]]) -> None:
    detail = f"gpu {kept.gpu}: conflicting samples at t_ms {kept.t_ms}; kept the smallest"
    faults.append((kept.t_ms, Fault(FaultKind.COUNTER_PHYSICS, kept.t_ms, kept.t_ms, detail,
                                    kept.gpu)))


def _meter_gpu(
    stream: list[Sample],
    gpu: GpuInfo,
    policy: MeteringPolicy,
    detector: _Detector,
    span_start_ms: int,
    period_end_ms: int,
) -> _GpuTotals:
    totals = _GpuTotals()
    g = gpu.index
    limit_mw = gpu.power_limit_mw
    max_gap = policy.max_gap_ms
    busy_power_x1000 = policy.busy_min_power_permille_of_limit * limit_mw
    power_ceiling_x1000 = (1000 + policy.power_limit_margin_permille) * limit_mw
    window_ms = policy.energy_check_window_ms
    floor_uj = limit_mw * policy.energy_tolerance_floor_ms_at_limit

    def emit(detected_ms: int, kind: FaultKind, start_ms: int, detail: str) -> None:
        totals.faults.append(
            (detected_ms, Fault(kind, start_ms, detected_ms, f"gpu {g}: {detail}", g))
        )

    def silence(since_ms: int, next_ms: int | None, what: str) -> None:
        """A DOWNTIME fault if no sample of this GPU follows ``since_ms`` within the gap
        threshold, fixed at the first sample of any GPU that proves the silence."""
        if next_ms is not None and next_ms - since_ms <= max_gap:
            return
        proof_ms = detector.first_after(since_ms + max_gap)
        if proof_ms is not None:
            emit(proof_ms, FaultKind.DOWNTIME, since_ms,
                 f"no telemetry{what} for {proof_ms - since_ms} ms"
                 f" (gap threshold {max_gap} ms)")

    if not stream:
        silence(span_start_ms, None, " since the start")
        return totals
    if stream[0].t_ms > span_start_ms:
        silence(span_start_ms, stream[0].t_ms, " since the start")

    # Runs of one offence: one fault per run, emitted when the run becomes detectable.
    idle_busy_start_ms: int | None = None
    idle_busy_ms = 0
    idle_busy_reported = False
    over_power = False
    over_counter = False
    last_bad_window = -2

    def check_power(sample: Sample) -> None:
        nonlocal over_power
        if sample.power_mw * 1000 <= power_ceiling_x1000:
            over_power = False
        elif not over_power:
            over_power = True
            emit(sample.t_ms, FaultKind.COUNTER_PHYSICS, sample.t_ms,
                 f"power {sample.power_mw} mW is above the {limit_mw} mW limit plus"
                 f" {policy.power_limit_margin_permille} per mille")

    # The energy-check window being filled: index, counter mJ, integrated uJ, intervals.
    window = stream[0].t_ms // window_ms
    win_counter_mj = win_integrated_uj = win_intervals = 0

    def close_window(closed_at_ms: int) -> None:
        nonlocal last_bad_window
        if win_intervals == 0:
            return
        counter_uj = win_counter_mj * 1000
        diff_uj = abs(counter_uj - win_integrated_uj)
        base_uj = max(counter_uj, win_integrated_uj)
        if diff_uj * 1000 <= policy.energy_tolerance_permille * base_uj or diff_uj <= floor_uj:
            return
        if last_bad_window != window - 1:  # a new run of disagreeing windows
            emit(closed_at_ms, FaultKind.ENERGY_MISMATCH, window * window_ms,
                 f"energy counter {win_counter_mj} mJ against integrated power"
                 f" {win_integrated_uj // 1000} mJ in the {window_ms} ms window from"
                 f" {window * window_ms}")
        last_bad_window = window

    check_power(stream[0])
    for prev, cur in zip(stream, stream[1:]):
        interval_ms = cur.t_ms - prev.t_ms
        if cur.t_ms // window_ms != window:
            close_window(cur.t_ms)
            window = cur.t_ms // window_ms
            win_counter_mj = win_integrated_uj = win_intervals = 0
        if interval_ms > max_gap:
            silence(prev.t_ms, cur.t_ms, "")
            idle_busy_start_ms, over_power, over_counter = None, False, False
            check_power(cur)
            continue

        totals.available_ms += interval_ms
        # Busy: utilization-weighted time, only while power is above idle draw.
        if cur.power_mw * 1000 >= busy_power_x1000:
            totals.busy_pct_ms += interval_ms * cur.util_gpu_pct
            idle_busy_start_ms = None
        elif cur.util_gpu_pct >= policy.idle_busy_min_util_pct:
            if idle_busy_start_ms is None:
                idle_busy_start_ms, idle_busy_ms, idle_busy_reported = prev.t_ms, 0, False
            idle_busy_ms += interval_ms
            if not idle_busy_reported and idle_busy_ms >= policy.idle_busy_min_duration_ms:
                idle_busy_reported = True
                emit(cur.t_ms, FaultKind.IDLE_POWER_BUSY, idle_busy_start_ms,
                     f"utilization >= {policy.idle_busy_min_util_pct}% while power stayed"
                     f" below {busy_power_x1000 // 1000} mW for {idle_busy_ms} ms")
        else:
            idle_busy_start_ms = None

        # Energy: counter delta (a drop is a driver reload), capped by what physics allows.
        if cur.energy_mj >= prev.energy_mj:
            delta_mj = cur.energy_mj - prev.energy_mj
        else:
            delta_mj = cur.energy_mj
        cap_mj = power_ceiling_x1000 * (interval_ms + policy.counter_slack_ms) // 1_000_000
        if delta_mj > cap_mj:
            if not over_counter:
                over_counter = True
                emit(cur.t_ms, FaultKind.COUNTER_PHYSICS, prev.t_ms,
                     f"energy counter rose {delta_mj} mJ in {interval_ms} ms, more than the"
                     f" {limit_mw} mW limit allows; {cap_mj} mJ billed")
            delta_mj = cap_mj
        else:
            over_counter = False
        integrated_uj = cur.power_mw * interval_ms
        totals.energy_mj += delta_mj
        totals.integrated_uj += integrated_uj
        win_counter_mj += delta_mj
        win_integrated_uj += integrated_uj
        win_intervals += 1
        check_power(cur)

    # The still-open energy window is not judged yet; a GPU silent at the end may be down.
    if period_end_ms > stream[-1].t_ms:
        silence(stream[-1].t_ms, None, "")
    return totals
