"""The pure metering core: a state machine that folds samples into integer totals and faults.

No I/O, no clock, no globals, no floats. ``feed(state, terms, policy, samples)`` advances a
:class:`~oracle.metering.state.MeterState` over samples in arrival order; ``totals`` reads the
cumulative :class:`UsageTotals` off a state without changing it. Because metering is a fold,
any chunking of the same sample sequence (with the state checkpointed in between) gives the
same totals and faults as metering it at once, and a report costs work proportional to the
samples since the last one. ``meter_samples`` meters a whole sample set (any order) at once.

The physics comes from the rental's :class:`~oracle.metering.policy.MeterTerms` (the power
limit of the rented model, the GPU count, the start and end, the SLA), never from a batch.

Definitions (per GPU; an *interval* is the span between two consecutive kept samples ``a``
and ``b`` and is described by ``b``'s readings, because NVML's ``power_mw`` is a trailing
1-second average and ``util_gpu_pct`` covers the sample period just ended):

- **The rental's samples.** Samples before ``start_ms`` or after ``end_ms``, and samples of a
  GPU that is not a rented GPU, are excluded (counted in ``excluded_sample_count``); nothing
  the node accepts makes metering fail.
- **Rented GPUs.** The telemetry's GPUs by index, a UUID listed twice counting once, only
  GPUs of the rented model (when the terms name one), at most ``gpu_count``. Fewer than
  ``gpu_count``: a GPU_MISSING fault (per window) and the missing GPUs are downtime (they add
  nothing to available time while the uptime denominator counts them).
- **Available.** Intervals up to ``policy.max_gap_ms`` long, summed over GPUs, floored to
  seconds once over the sum. A longer interval is unpaid (no available, busy or energy).
- **Downtime (SLA).** A DOWNTIME fault only when the rental breaks its SLA: uptime in a window
  of ``window_s`` from the start below ``min_uptime_bps`` (judged once the window has closed:
  at the first sample past its end), or one GPU silent longer than ``terms.max_gap_ms``
  (judged at the first sample of any GPU past it). A short gap (an agent restart) is unpaid
  time and nothing else.
- **Busy.** ``interval_ms * util_gpu_pct / 100`` over intervals whose power is at least
  ``busy_min_power_permille_of_limit`` of the limit. Utilization of at least
  ``idle_busy_min_util_pct`` below that power for ``idle_busy_min_duration_ms`` sets the
  IDLE_POWER_BUSY usage flag (the renter's workload; never a FaultReport) and is never busy.
- **Phantom load.** Power at the busy threshold or above while utilization stays at most
  ``phantom_load_max_util_pct`` for ``phantom_load_min_duration_ms``: COUNTER_PHYSICS.
- **Energy.** Counter deltas (a drop is a driver reload: the reading after it is billed).
  Billed at most ``limit * (1 + margin) * (interval + counter_slack_ms)`` (more: COUNTER_PHYSICS),
  and at most ``limit * interval`` while power reads above ``limit * (1 + margin)``.
- **Memory physics.** More memory in use than the rented model has (``terms.memory_mib``):
  COUNTER_PHYSICS.
- **Copied telemetry.** A stretch of ``replay_stretch_samples`` power readings repeating one
  seen before on any GPU of the rental: COUNTER_PHYSICS.
- **Power physics.** Power above ``limit * (1 + power_limit_margin_permille/1000)``:
  COUNTER_PHYSICS, and that interval is billed at most at the limit.
- **Energy check.** Per GPU and window of ``energy_check_window_ms`` aligned to unix time,
  once closed: raw counter deltas against right-rule integrated power; a difference beyond
  ``energy_tolerance_permille`` of the larger and beyond ``energy_tolerance_floor_ms_at_limit``
  at the limit is an ENERGY_MISMATCH.
- **Foreign processes (issue 10).** A sample whose ``foreign_process_count`` is not 0 (the
  agent saw processes outside the renter's container on that GPU): a FOREIGN_PROCESS fault,
  and the interval it closes is unbilled (no available, busy or energy; it still counts as up
  for the SLA, so it is not DOWNTIME as well). The first sample of a GPU closes no interval but
  still files the fault.
- **Carbon.** ``floor(energy_mj * g_per_kwh / 3_600_000)`` milligrams.
- **On-chain bounds.** A report never carries more than ``gpu_count * (periodEnd - startedAt)``
  GPU-seconds (available and busy) nor more energy than every rented GPU at the model's limit
  for that long: what the contract accepts for an Active rental.
- **Uptime.** ``floor(available_ms * 10000 / ((period_end - start_ms) * gpu_count))``.
- **Duplicates and order.** Samples are taken in arrival order (the node's: its batch hash
  chain). A sample of a GPU at the time of its previous one is ignored when identical and is
  contradictory telemetry (COUNTER_PHYSICS, first one kept) otherwise; one older than the GPU's
  previous sample is dropped as COUNTER_PHYSICS.
- **Faults: per kind and window, fixed when detected.** A fault's ``end_ms`` is the time of
  the sample that proved it (``now``); its window is ``(end_ms // 1000 - start_s) //
  window_s``. At most one fault per (kind, window) is recorded: the first; later offences of
  that kind in that window only keep the flag. A fault list only ever grows at its end, so a
  fault's index (its ``faultId``) never changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from oracle.errors import MeteringError
from oracle.metering.faults import Fault, FaultKind
from oracle.metering.policy import DEFAULT_POLICY, MeteringPolicy, MeterTerms
from oracle.metering.state import GpuState, MeterState
from oracle.protocol import BPS, MILLIJOULES_PER_KWH
from oracle.telemetry.samples import SAMPLE_FIELDS, GpuInfo, Sample

#: energy_mj * g_per_kwh * 1000 (mg per g) / MILLIJOULES_PER_KWH
_CARBON_DIVISOR = MILLIJOULES_PER_KWH // 1000
_FINGERPRINT_MODULUS = (1 << 61) - 1

_DOWNTIME, _ENERGY, _PHYSICS, _IDLE, _MISSING, _FOREIGN = (
    FaultKind.DOWNTIME, FaultKind.ENERGY_MISMATCH, FaultKind.COUNTER_PHYSICS,
    FaultKind.IDLE_POWER_BUSY, FaultKind.GPU_MISSING, FaultKind.FOREIGN_PROCESS)


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
    excluded_sample_count: int = 0
    missing_gpus: int = 0
    #: Proof-of-GPU outcomes up to ``period_end_ms`` (set by ``challenges.exclude_unpaid``).
    challenges_passed: int = 0
    challenges_failed: int = 0


def _check_int(value: object, what: str) -> int:
    if type(value) is not int:
        raise MeteringError(f"{what} must be an int, got {value!r}")
    return value


def _validate_sample(sample: Sample) -> tuple[int, ...]:
    if not isinstance(sample, Sample):
        raise MeteringError(f"not a Sample: {sample!r}")
    values = tuple(getattr(sample, name) for name in SAMPLE_FIELDS)
    for name, value in zip(SAMPLE_FIELDS, values):
        _check_int(value, f"sample {name}")
    if sample.t_ms < 0 or sample.energy_mj < 0 or sample.power_mw < 0 or sample.mem_used_mib < 0:
        raise MeteringError(f"negative reading in sample {sample!r}")
    if not 0 <= sample.util_gpu_pct <= 100 or not 0 <= sample.util_mem_pct <= 100:
        raise MeteringError(f"utilization outside 0..100 in sample {sample!r}")
    return values


def rented_gpus(gpus: Sequence[GpuInfo], terms: MeterTerms) -> list[int]:
    """The indices of the telemetry's GPUs that count as rented GPUs (see the module doc)."""
    chosen: list[int] = []
    uuids: set[str] = set()
    for gpu in sorted(gpus, key=lambda g: g.index):
        _check_int(gpu.index, "gpu index")
        if gpu.index in chosen:
            raise MeteringError(f"gpu {gpu.index} listed twice")
        if gpu.uuid in uuids or (terms.gpu_model and gpu.name != terms.gpu_model):
            continue
        if len(chosen) < terms.gpu_count:
            uuids.add(gpu.uuid)
            chosen.append(gpu.index)
    return chosen


def new_state(gpus: Sequence[GpuInfo], terms: MeterTerms) -> MeterState:
    """The state before the first sample, for the GPUs the rental's telemetry lists."""
    chosen = rented_gpus(gpus, terms)
    state = MeterState(configured=True, missing_gpus=terms.gpu_count - len(chosen),
                       gap_check_ms=terms.start_ms + terms.max_gap_ms)
    state.gpus = {index: GpuState(last_t_ms=terms.start_ms) for index in chosen}
    return state


class _Meter:
    """One feed: the state plus the constants derived from terms and policy."""

    def __init__(self, state: MeterState, terms: MeterTerms, policy: MeteringPolicy) -> None:
        self.s = state
        self.terms = terms
        self.policy = policy
        limit = terms.power_limit_mw
        self.limit_mw = limit
        self.busy_power_x1000 = policy.busy_min_power_permille_of_limit * limit
        self.ceiling_x1000 = (1000 + policy.power_limit_margin_permille) * limit
        self.floor_uj = limit * policy.energy_tolerance_floor_ms_at_limit
        self.start_s = terms.start_ms // 1000
        self.window_ms = terms.window_s * 1000

    # -- faults -----------------------------------------------------------------------------

    def emit(self, kind: FaultKind, start_ms: int, gpu: int | None, detail: str) -> None:
        """File a fault detected now, unless its kind was already filed in this window."""
        s = self.s
        bit = 1 << int(kind)
        s.fault_flags |= bit
        now = s.now_ms
        window = (now // 1000 - self.start_s) // self.terms.window_s
        if window != s.fault_window:
            s.fault_window, s.fault_mask = window, 0
        if s.fault_mask & bit:
            return
        s.fault_mask |= bit
        where = "rental" if gpu is None else f"gpu {gpu}"
        s.faults.append(Fault(kind, start_ms, now, f"{where}: {detail}", gpu or 0))

    # -- time advancing: SLA windows and silences -------------------------------------------

    def advance(self, t_ms: int) -> None:
        s, terms = self.s, self.terms
        if s.now_ms is not None and t_ms <= s.now_ms:
            return
        if s.first_ms is None:
            s.first_ms = t_ms
        s.now_ms = t_ms
        window = (t_ms - terms.start_ms) // self.window_ms
        if window > s.sla_window:
            self.judge_uptime(s.sla_window, s.sla_available_ms)
            if window > s.sla_window + 1:  # whole windows without a sample of any GPU
                self.judge_uptime(window - 1, 0)
            s.sla_window, s.sla_available_ms = window, 0
        if t_ms > s.gap_check_ms:
            self.check_silences(t_ms)

    def note_missing(self) -> None:
        s, terms = self.s, self.terms
        if s.missing_gpus:
            self.emit(_MISSING, terms.start_ms, None,
                      f"telemetry lists {terms.gpu_count - s.missing_gpus} of the {terms.gpu_count}"
                      f" rented GPUs{' of model ' + terms.gpu_model if terms.gpu_model else ''}")

    def judge_uptime(self, window: int, available_ms: int) -> None:
        terms = self.terms
        uptime_bps = available_ms * BPS // (terms.gpu_count * self.window_ms)
        if uptime_bps < terms.min_uptime_bps:
            self.emit(_DOWNTIME, terms.start_ms + window * self.window_ms, None,
                      f"uptime {uptime_bps} bps in window {window} of {terms.window_s} s, below the"
                      f" {terms.min_uptime_bps} bps the rental promised")

    def check_silences(self, t_ms: int) -> None:
        s, max_gap = self.s, self.terms.max_gap_ms
        next_check = None
        for index, gpu in s.gpus.items():
            if gpu.silence_reported:
                continue
            if t_ms - gpu.last_t_ms > max_gap:
                gpu.silence_reported = True
                self.emit(_DOWNTIME, gpu.last_t_ms, index,
                          f"no telemetry for {t_ms - gpu.last_t_ms} ms, longer than the"
                          f" {max_gap} ms the rental tolerates")
            elif next_check is None or gpu.last_t_ms + max_gap < next_check:
                next_check = gpu.last_t_ms + max_gap
        s.gap_check_ms = t_ms if next_check is None else next_check

    # -- one sample -------------------------------------------------------------------------

    def sample(self, values: tuple[int, ...]) -> None:
        s, terms, policy = self.s, self.terms, self.policy
        index, t_ms, energy_mj, power_mw, util = values[0], values[1], values[2], values[3], values[4]
        end_ms = terms.end_ms
        if t_ms < terms.start_ms or (end_ms is not None and t_ms > end_ms):
            s.excluded_count += 1
            return
        gpu = s.gpus.get(index)
        if gpu is None:  # not a rented GPU: its readings do not count, its time does
            s.excluded_count += 1
            self.advance(t_ms)
            self.note_missing()
            return
        prev = gpu.last
        if prev is not None and t_ms <= prev[1]:
            if t_ms == prev[1] and values == prev:
                return  # an identical duplicate counts once
            self.advance(t_ms)
            what = "conflicting samples at" if t_ms == prev[1] else "sample older than its previous one at"
            self.emit(_PHYSICS, t_ms, index, f"{what} t_ms {t_ms}; kept the first")
            return
        self.advance(t_ms)
        self.note_missing()
        s.sample_count += 1
        gpu.last = values
        gpu.last_t_ms = t_ms
        gpu.silence_reported = False
        over_power = power_mw * 1000 > self.ceiling_x1000
        if over_power:
            self.emit(_PHYSICS, t_ms, index,
                      f"power {power_mw} mW is above the {self.limit_mw} mW limit of the rented model"
                      f" plus {policy.power_limit_margin_permille} per mille")
        if terms.memory_mib and values[6] > terms.memory_mib:
            self.emit(_PHYSICS, t_ms, index,
                      f"{values[6]} MiB of memory in use, more than the {terms.memory_mib} MiB of the rented model")
        self.check_copied_power(gpu, index, t_ms, power_mw)
        foreign = values[8]
        if foreign:
            self.emit(_FOREIGN, t_ms if prev is None else prev[1], index,
                      f"{foreign} process(es) outside the renter's container at t_ms {t_ms}; unbilled")
        if prev is None:
            return
        interval_ms = t_ms - prev[1]
        window = t_ms // policy.energy_check_window_ms
        if gpu.win != window:
            self.close_energy_window(gpu, index)
            gpu.win, gpu.win_counter_mj, gpu.win_integrated_uj, gpu.win_intervals = window, 0, 0, 0
        if interval_ms > policy.max_gap_ms:  # unpaid; a fault only beyond the SLA (advance)
            gpu.idle_busy_start_ms = gpu.phantom_start_ms = None
            return
        accrue = s.accrue_from_ms is None or t_ms >= s.accrue_from_ms
        bill = accrue and not foreign
        busy_power = power_mw * 1000 >= self.busy_power_x1000
        # Busy: utilization-weighted time, only while power is above idle draw.
        if busy_power:
            if bill:
                s.busy_pct_ms += interval_ms * util
            gpu.idle_busy_start_ms = None
        elif util >= policy.idle_busy_min_util_pct:
            if gpu.idle_busy_start_ms is None:
                gpu.idle_busy_start_ms, gpu.idle_busy_ms = prev[1], 0
            gpu.idle_busy_ms += interval_ms
            if gpu.idle_busy_ms >= policy.idle_busy_min_duration_ms:
                s.fault_flags |= 1 << int(_IDLE)  # a usage flag: the renter's workload
        else:
            gpu.idle_busy_start_ms = None
        # Phantom load: busy power with no kernel running.
        if busy_power and util <= policy.phantom_load_max_util_pct:
            if gpu.phantom_start_ms is None:
                gpu.phantom_start_ms, gpu.phantom_ms = prev[1], 0
            gpu.phantom_ms += interval_ms
            if gpu.phantom_ms >= policy.phantom_load_min_duration_ms:
                self.emit(_PHYSICS, gpu.phantom_start_ms, index,
                          f"power at least {self.busy_power_x1000 // 1000} mW with utilization at most"
                          f" {policy.phantom_load_max_util_pct}% for {gpu.phantom_ms} ms")
        else:
            gpu.phantom_start_ms = None
        # Energy: counter delta (a drop is a driver reload), capped by what physics allows.
        raw_mj = energy_mj - prev[2] if energy_mj >= prev[2] else energy_mj
        cap_mj = self.ceiling_x1000 * (interval_ms + policy.counter_slack_ms) // 1_000_000
        if raw_mj > cap_mj:
            self.emit(_PHYSICS, prev[1], index,
                      f"energy counter rose {raw_mj} mJ in {interval_ms} ms, more than the"
                      f" {self.limit_mw} mW limit allows; {cap_mj} mJ billed")
        if over_power:
            cap_mj = min(cap_mj, self.limit_mw * interval_ms // 1000)
        integrated_uj = power_mw * interval_ms
        gpu.win_counter_mj += raw_mj
        gpu.win_integrated_uj += integrated_uj
        gpu.win_intervals += 1
        if accrue:
            s.sla_available_ms += interval_ms
        if bill:
            s.available_ms += interval_ms
            s.energy_mj += min(raw_mj, cap_mj)
            s.integrated_uj += integrated_uj

    def check_copied_power(self, gpu: GpuState, index: int, t_ms: int, power_mw: int) -> None:
        """A stretch of power readings seen before (on any GPU of the rental): copied telemetry."""
        policy, recent = self.policy, gpu.recent_power_mw
        recent.append(power_mw)
        if len(recent) > policy.replay_stretch_samples:
            del recent[0]
        if len(recent) < policy.replay_stretch_samples or len(set(recent)) < policy.replay_min_distinct_readings:
            return
        fingerprint = 0
        for reading in recent:
            fingerprint = (fingerprint * 1_000_003 + reading) % _FINGERPRINT_MODULUS
        seen = self.s.power_stretches
        if fingerprint in seen:
            self.emit(_PHYSICS, t_ms, index,
                      f"the last {len(recent)} power readings repeat a stretch seen before"
                      f" (fingerprint {fingerprint}): copied telemetry")
            return
        seen[fingerprint] = None
        while len(seen) > policy.replay_memory_per_gpu * len(self.s.gpus):
            del seen[next(iter(seen))]

    def close_energy_window(self, gpu: GpuState, index: int) -> None:
        if not gpu.win_intervals:
            return
        counter_uj, integrated_uj = gpu.win_counter_mj * 1000, gpu.win_integrated_uj
        diff_uj = abs(counter_uj - integrated_uj)
        base_uj = max(counter_uj, integrated_uj)
        if diff_uj * 1000 <= self.policy.energy_tolerance_permille * base_uj or diff_uj <= self.floor_uj:
            return
        window_ms = self.policy.energy_check_window_ms
        self.emit(_ENERGY, gpu.win * window_ms, index,
                  f"energy counter {gpu.win_counter_mj} mJ against integrated power"
                  f" {integrated_uj // 1000} mJ in the {window_ms} ms window from {gpu.win * window_ms}")


def feed(state: MeterState, terms: MeterTerms, policy: MeteringPolicy, samples: Iterable[Sample]) -> MeterState:
    """Advance ``state`` (in place, and returned) over ``samples`` in the given order."""
    return _feed_values(state, terms, policy, (_validate_sample(sample) for sample in samples))


def _feed_values(state: MeterState, terms: MeterTerms, policy: MeteringPolicy,
                 values: Iterable[tuple[int, ...]]) -> MeterState:
    if not state.configured:
        raise MeteringError("the meter state has no GPUs yet: start it with new_state(gpus, terms)")
    step = _Meter(state, terms, policy).sample
    for value in values:
        step(value)
    return state


def _elapsed_s(terms: MeterTerms, period_end_ms: int) -> int:
    """Whole seconds from ``startedAt`` to ``periodEnd`` as the contract counts them."""
    return max(0, period_end_ms // 1000 - terms.start_ms // 1000)  # start_ms = startedAt * 1000


def available_bound_s(terms: MeterTerms, period_end_ms: int) -> int:
    """The most GPU-seconds a report may carry on chain: ``gpuCount * (periodEnd - startedAt)``
    (flooring each GPU's milliseconds once over the sum could exceed it by gpuCount-1 s)."""
    return terms.gpu_count * _elapsed_s(terms, period_end_ms)


def energy_bound_mj(terms: MeterTerms, period_end_ms: int) -> int:
    """The most energy a report bills: every rented GPU at the model's limit the whole time
    (below the contract's bound, which allows a margin over the limit)."""
    return terms.gpu_count * terms.power_limit_mw * _elapsed_s(terms, period_end_ms)


def totals(state: MeterState, terms: MeterTerms) -> UsageTotals:
    """The cumulative totals of ``state`` (the state is not changed)."""
    start = terms.start_ms
    end = start if state.now_ms is None else state.now_ms
    span_ms = (end - start) * terms.gpu_count
    available = state.available_ms
    energy = min(state.energy_mj, energy_bound_mj(terms, end))
    return UsageTotals(
        available_gpu_seconds=min(available // 1000, available_bound_s(terms, end)),
        busy_gpu_seconds=min(state.busy_pct_ms // 100_000, available_bound_s(terms, end)),
        energy_millijoules=energy,
        integrated_energy_millijoules=state.integrated_uj // 1000,
        carbon_milligrams=energy * terms.grid_intensity_g_per_kwh // _CARBON_DIVISOR,
        uptime_bps=min(BPS, available * BPS // span_ms) if span_ms > 0 else 0,
        period_start_ms=start if state.first_ms is None else state.first_ms,
        period_end_ms=end,
        faults=tuple(state.faults),
        fault_flags=state.fault_flags,
        available_gpu_milliseconds=available,
        busy_gpu_milliseconds=state.busy_pct_ms // 100,
        sample_count=state.sample_count,
        gpu_count=terms.gpu_count,
        excluded_sample_count=state.excluded_count,
        missing_gpus=state.missing_gpus,
    )


def meter_samples(
    samples: Iterable[Sample],
    gpus: Sequence[GpuInfo],
    policy: MeteringPolicy = DEFAULT_POLICY,
    grid_intensity_g_per_kwh: int = 0,
    *,
    rental_start_ms: int | None = None,
    terms: MeterTerms | None = None,
) -> UsageTotals:
    """Meter a sample set (any order, duplicates allowed) at once: sorted by time, then fed.

    With ``terms`` (a rental's), everything but the samples' GPU list comes from them. Without,
    for a trace metered outside a rental: the listed GPUs are the rental, the lowest declared
    power limit is the limit, and the rental starts at ``rental_start_ms`` or the first sample.
    """
    if not isinstance(policy, MeteringPolicy):
        raise MeteringError(f"policy must be a MeteringPolicy, got {policy!r}")
    ordered = sorted((_validate_sample(sample) for sample in samples), key=lambda v: (v[1], v[0], v))
    if terms is None:
        terms = _trace_terms(ordered, gpus, grid_intensity_g_per_kwh, rental_start_ms)
    return totals(_feed_values(new_state(gpus, terms), terms, policy, ordered), terms)


def _trace_terms(ordered: Sequence[tuple[int, ...]], gpus: Sequence[GpuInfo], g_per_kwh: int,
                 rental_start_ms: int | None) -> MeterTerms:
    if not gpus:
        raise MeteringError("no GPUs to meter")
    if not ordered:
        raise MeteringError("no samples to meter")
    _check_int(g_per_kwh, "grid_intensity_g_per_kwh")
    if g_per_kwh < 0:
        raise MeteringError("grid_intensity_g_per_kwh must not be negative")
    for gpu in gpus:
        _check_int(gpu.power_limit_mw, "gpu power_limit_mw")
        if gpu.power_limit_mw <= 0:
            raise MeteringError(f"gpu {gpu.index}: power limit must be positive")
    start = ordered[0][1] if rental_start_ms is None else _check_int(rental_start_ms, "rental_start_ms")
    return MeterTerms(gpu_count=len(gpus), power_limit_mw=min(g.power_limit_mw for g in gpus),
                      start_ms=max(start, 0), grid_intensity_g_per_kwh=g_per_kwh)
