"""Metering thresholds (protocol constants) and a rental's terms (fixed on chain per rental).

Integers only, units in every name, frozen so no node can drift.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from oracle.errors import ConfigError


def _check_ints(obj: object, name: str) -> None:
    for field in fields(obj):
        value = getattr(obj, field.name)
        if type(value) is not int:
            raise ConfigError(f"{name}.{field.name} must be an int, got {value!r}")
        if value < 0:
            raise ConfigError(f"{name}.{field.name} must not be negative, got {value}")


@dataclass(frozen=True, slots=True)
class MeteringPolicy:
    """Integer thresholds of the metering core, the same on every node.

    Every honest node must meter with the same policy, or the reports differ byte for byte.
    The defaults are tuned on the real H100 traces in ``oracle/data/traces`` (see each field;
    ``tests/oracle/unit/test_metering_accuracy.py`` checks that honest traces trip none).
    """

    #: Two consecutive samples of one GPU at most this far apart count as telemetry present;
    #: a longer interval is unpaid (no available, busy or energy time). It is a DOWNTIME fault
    #: only beyond the rental's SLA (``MeterTerms.max_gap_ms``, ``min_uptime_bps``). The agent
    #: samples at 1 Hz, so 5 s tolerates four lost samples (a retransmitted batch, a GC pause).
    max_gap_ms: int = 5000
    #: An interval is busy work only if its power is at least this share of the power limit.
    #: The H100 in the trace idles at 123-135 W of 700 W (176-193 per mille) and a spin-only
    #: kernel keeps it there; its lightest real load (4 GiB device copies) draws ~397 W
    #: (567 per mille). 250 per mille (175 W on that H100) sits well between the two.
    busy_min_power_permille_of_limit: int = 250
    #: Utilization at or above this while power stays below the busy threshold is the
    #: "busy at idle draw" pattern: the IDLE_POWER_BUSY usage flag (never a slash) ...
    idle_busy_min_util_pct: int = 50
    #: ... once it lasts this long without a break. NVML power is a 1-second trailing average,
    #: so at the start of a load utilization reads high a few hundred ms before power catches
    #: up; 3 s is well beyond that lag.
    idle_busy_min_duration_ms: int = 3000
    #: Busy-level power (at least the busy threshold) while utilization stays at or below this
    #: is physically impossible for long: no kernel ran, yet the board drew load power. At the
    #: end of a load the 1-s power average lags utilization: on the traces the longest such
    #: run is 0.8 s at 10 Hz and 1.0 s at 1 Hz ...
    phantom_load_max_util_pct: int = 5
    #: ... so a run of 3 s (3x the longest honest one) is a COUNTER_PHYSICS fault.
    phantom_load_min_duration_ms: int = 3000
    #: Copied telemetry: a stretch of this many consecutive power readings of a GPU (in mW) that
    #: repeats one seen before on any GPU of the rental is COUNTER_PHYSICS. Real power never
    #: repeats to the milliwatt for 8 readings (none on the traces at 1 Hz or 10 Hz) ...
    replay_stretch_samples: int = 8
    #: ... when the stretch has at least this many distinct readings (a stuck sensor or a
    #: constant reading is not a copy: the power limit judges those) ...
    replay_min_distinct_readings: int = 4
    #: ... among the stretches of the last this many samples per GPU (bounded memory: about
    #: 4 minutes at 1 Hz; longer loops are the proof-of-GPU challenges' to catch).
    replay_memory_per_gpu: int = 256
    #: Counter energy and integrated power are compared per closed window of this length
    #: (windows aligned to absolute unix time, so every node cuts them the same way).
    energy_check_window_ms: int = 60_000
    #: Relative disagreement allowed in a window. Full windows of the traces agree within
    #: 0.46 % at 10 Hz and 0.28 % at 1 Hz; 10 per mille (1 %) is twice the worst honest window.
    energy_tolerance_permille: int = 10
    #: Absolute disagreement always allowed in a window: what the GPU draws at its power limit
    #: in this many ms. A 1-s trailing power average misses at most 0.5 s of a window's edge
    #: load and the counter moves in ~100 ms steps (0.2 s over both edges): 1 s has a 40 %
    #: margin over that and absorbs the partial windows at a rental's start and end.
    energy_tolerance_floor_ms_at_limit: int = 1000
    #: Power may exceed the model's limit by this much before it is impossible: 1-s averages
    #: on the H100 trace reach 715.9 W of 700 W (+2.3 %); 50 per mille is twice that.
    power_limit_margin_permille: int = 50
    #: The energy counter moves about every 100 ms, so a short interval may see one update more
    #: than its length allows (counter-derived power reaches 849 W of 700 W over 100 ms on the
    #: trace). The counter-rate bound allows this much extra time per interval.
    counter_slack_ms: int = 250

    def __post_init__(self) -> None:
        _check_ints(self, "MeteringPolicy")
        for name in ("max_gap_ms", "energy_check_window_ms", "replay_stretch_samples"):
            if getattr(self, name) == 0:
                raise ConfigError(f"MeteringPolicy.{name} must be positive")
        for name in ("idle_busy_min_util_pct", "phantom_load_max_util_pct"):
            if getattr(self, name) > 100:
                raise ConfigError(f"MeteringPolicy.{name} must be at most 100")


DEFAULT_POLICY = MeteringPolicy()

#: SLA defaults for a rental whose terms do not state one (``minUptimeBps``/``maxGapSeconds`` 0).
DEFAULT_MIN_UPTIME_BPS = 9_500
DEFAULT_MAX_GAP_SECONDS = 300
DEFAULT_SLASH_WINDOW_SECONDS = 3_600


@dataclass(frozen=True, slots=True)
class MeterTerms:
    """What metering takes from the rental (its on-chain terms), never from the telemetry.

    ``start_ms`` is ``startedAt * 1000``; samples before it are excluded. ``end_ms`` is the last
    millisecond that belongs to the rental (``endedAt * 1000 + 999``: a report whose
    ``periodEnd <= endedAt`` is unchanged by the end), or None while it runs.
    """

    gpu_count: int
    power_limit_mw: int
    start_ms: int
    end_ms: int | None = None
    #: SLA: uptime over each slash window at least this (basis points) ...
    min_uptime_bps: int = DEFAULT_MIN_UPTIME_BPS
    #: ... and no GPU silent longer than this.
    max_gap_ms: int = DEFAULT_MAX_GAP_SECONDS * 1000
    #: Faults are aggregated per (kind, window of this length from the start); uptime is
    #: judged per such window.
    window_s: int = DEFAULT_SLASH_WINDOW_SECONDS
    grid_intensity_g_per_kwh: int = 0
    #: The rented model (NVML name); GPUs of another model do not count as rented GPUs.
    #: Empty: not checked (a trace metered outside a rental).
    gpu_model: str = ""
    #: The model's memory: a reading of more memory in use is impossible (COUNTER_PHYSICS).
    #: 0: not checked.
    memory_mib: int = 0

    def __post_init__(self) -> None:
        if type(self.gpu_model) is not str:
            raise ConfigError(f"MeterTerms.gpu_model must be a str, got {self.gpu_model!r}")
        for field in fields(self):
            if field.name == "gpu_model":
                continue
            value = getattr(self, field.name)
            if value is None and field.name == "end_ms":
                continue
            if type(value) is not int or value < 0:
                raise ConfigError(f"MeterTerms.{field.name} must be a non-negative int, got {value!r}")
        for name in ("gpu_count", "power_limit_mw", "max_gap_ms", "window_s"):
            if getattr(self, name) == 0:
                raise ConfigError(f"MeterTerms.{name} must be positive")
        if self.min_uptime_bps > 10_000:
            raise ConfigError("MeterTerms.min_uptime_bps must be at most 10000")

    def checkpoint_key(self) -> str:
        """A canonical text of the terms but the end: a meter state is valid under another set
        of terms only if they have the same key, and its newest sample is not past their end."""
        return "|".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self) if f.name != "end_ms")
