"""Metering thresholds: integers only, units in every name, frozen so no node can drift."""

from __future__ import annotations

from dataclasses import dataclass, fields

from oracle.errors import ConfigError


@dataclass(frozen=True, slots=True)
class MeteringPolicy:
    """Integer thresholds of the metering core.

    Every honest node must meter with the same policy, or the reports differ byte for byte.
    The defaults are tuned on the real H100 traces in ``shared/telemetry/`` (see each field).
    """

    #: Two consecutive samples of one GPU at most this far apart count as telemetry present;
    #: a longer gap is downtime (a DOWNTIME fault, no available, busy or energy time). The agent
    #: samples at 1 Hz, so 5 s tolerates four lost samples (a retransmitted batch, a GC pause)
    #: before calling the GPU down.
    max_gap_ms: int = 5000
    #: An interval is busy work only if its power is at least this share of the GPU's power
    #: limit. The H100 in the trace idles at 123-135 W of a 700 W limit (176-193 per mille) and a
    #: spin-only kernel keeps it there; its lightest real load (4 GiB device copies) draws
    #: ~397 W (567 per mille). 250 per mille (175 W on that H100) sits well between the two.
    busy_min_power_permille_of_limit: int = 250
    #: Utilization at or above this while power stays below the busy threshold is the
    #: "busy at idle draw" pattern (IDLE_POWER_BUSY) ...
    idle_busy_min_util_pct: int = 50
    #: ... once it lasts this long without a break. NVML power is a 1-second trailing average,
    #: so at the start of a load utilization reads high a few hundred ms before power catches
    #: up; 3 s is well beyond that lag and well below any workload worth faking.
    idle_busy_min_duration_ms: int = 3000
    #: Counter energy and integrated power are compared per closed window of this length
    #: (windows aligned to absolute unix time, so every node cuts them the same way).
    energy_check_window_ms: int = 60_000
    #: Relative disagreement allowed in a window. The trace agrees within 0.1 % over 85 s and
    #: within ~1 % per window at load transitions (power lags by ~0.5 s).
    energy_tolerance_permille: int = 50
    #: Absolute disagreement always allowed in a window: what the GPU draws at its power limit
    #: in this many ms. Absorbs the power-averaging lag at a load transition in a short window
    #: (a partial window at the start or end of a rental), where a relative bound alone misfires.
    energy_tolerance_floor_ms_at_limit: int = 2000
    #: Power may exceed the board limit by this much before it is impossible (1-s averages on
    #: the H100 trace reach 702 W of 700 W: +0.3 %).
    power_limit_margin_permille: int = 100
    #: The energy counter moves about every 100 ms, so a short interval may see one update more
    #: than its length allows (counter-derived power reaches 849 W of 700 W over 100 ms on the
    #: trace). The counter-rate bound allows this much extra time per interval.
    counter_slack_ms: int = 250

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if type(value) is not int:
                raise ConfigError(f"MeteringPolicy.{field.name} must be an int, got {value!r}")
            if value < 0:
                raise ConfigError(f"MeteringPolicy.{field.name} must not be negative, got {value}")
        for name in ("max_gap_ms", "energy_check_window_ms"):
            if getattr(self, name) == 0:
                raise ConfigError(f"MeteringPolicy.{name} must be positive")
        if self.idle_busy_min_util_pct > 100:
            raise ConfigError("MeteringPolicy.idle_busy_min_util_pct must be at most 100")


DEFAULT_POLICY = MeteringPolicy()
