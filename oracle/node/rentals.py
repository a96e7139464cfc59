"""The rentals a node meters: who may sign their telemetry, what was rented, since when.

Fed by the chain follower from the rental's on-chain terms (``RentalRegistry.upsert``), or seeded
from settings. Metering takes its physics from here (:func:`meter_terms`), never from a batch.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from oracle.errors import ConfigError
from oracle.gpu_models import gpu_model as model_row
from oracle.metering.policy import (
    DEFAULT_MAX_GAP_SECONDS,
    DEFAULT_MIN_UPTIME_BPS,
    DEFAULT_SLASH_WINDOW_SECONDS,
    MeterTerms,
)
from oracle.node.storage import NodeStorage


@dataclass(frozen=True, slots=True)
class Rental:
    rental_id: int
    agent: str  # checksummed address registered for the rental
    gpu_count: int
    region: str
    grid_intensity_g_per_kwh: int
    start_ms: int
    #: The rented model (NVML name, the offer's gpuModel text) and its power limit in W (0: the
    #: model's row in oracle/gpu_models.py). From the rental's on-chain terms.
    gpu_model: str = ""
    power_limit_w: int = 0
    #: The model's memory in MiB (0: the model's row in oracle/gpu_models.py, if any).
    memory_mib: int = 0
    #: The offer's SLA (0: the protocol defaults) and the slash window (0: default).
    min_uptime_bps: int = 0
    max_gap_seconds: int = 0
    slash_window_seconds: int = 0
    #: The last millisecond of the rental (``endedAt * 1000 + 999``) once it ended.
    end_ms: int | None = None


#: Fields beyond the ``rentals`` table's columns, kept in ``rental_terms`` as JSON.
_EXTRA_FIELDS = ("gpu_model", "power_limit_w", "memory_mib", "min_uptime_bps", "max_gap_seconds",
                 "slash_window_seconds", "end_ms")


def meter_terms(rental: Rental) -> MeterTerms:
    """The metering terms of ``rental``: power limit from its terms or its model's table row.

    Raises ConfigError when neither names a power limit (the rental cannot be metered safely).
    """
    row = None
    if rental.gpu_model and (rental.power_limit_w <= 0 or rental.memory_mib <= 0):
        try:
            row = model_row(rental.gpu_model)
        except ConfigError:
            if rental.power_limit_w <= 0:
                raise
    if rental.power_limit_w > 0:
        limit_mw = rental.power_limit_w * 1000
    elif row is not None:
        limit_mw = row.power_limit_mw
    else:
        raise ConfigError(f"rental {rental.rental_id} names no GPU model and no power limit")
    memory_mib = rental.memory_mib or (row.memory_mib if row is not None else 0)
    return MeterTerms(
        gpu_count=rental.gpu_count,
        power_limit_mw=limit_mw,
        start_ms=rental.start_ms,
        end_ms=rental.end_ms,
        min_uptime_bps=rental.min_uptime_bps or DEFAULT_MIN_UPTIME_BPS,
        max_gap_ms=(rental.max_gap_seconds or DEFAULT_MAX_GAP_SECONDS) * 1000,
        window_s=rental.slash_window_seconds or DEFAULT_SLASH_WINDOW_SECONDS,
        grid_intensity_g_per_kwh=rental.grid_intensity_g_per_kwh,
        gpu_model=rental.gpu_model,
        memory_mib=memory_mib,
    )


@runtime_checkable
class RentalRegistry(Protocol):
    def get(self, rental_id: int) -> Rental | None: ...

    def upsert(self, rental: Rental) -> None: ...


class InMemoryRentalRegistry:
    def __init__(self, rentals: list[Rental] | tuple[Rental, ...] = ()) -> None:
        self._lock = threading.Lock()
        self._rentals = {rental.rental_id: rental for rental in rentals}

    def get(self, rental_id: int) -> Rental | None:
        return self._rentals.get(rental_id)

    def upsert(self, rental: Rental) -> None:
        with self._lock:
            self._rentals[rental.rental_id] = rental


class SqliteRentalRegistry:
    """Rentals in the node's own SQLite file, cached in memory (rentals change rarely)."""

    def __init__(self, storage: NodeStorage) -> None:
        self._storage = storage
        self._cache: dict[int, Rental] = {}

    def get(self, rental_id: int) -> Rental | None:
        rental = self._cache.get(rental_id)
        if rental is None:
            row = self._storage.get_rental(rental_id)
            if row is not None:
                rental = Rental(*row)
                extra = self._storage.get_rental_terms(rental_id)
                if extra is not None:
                    rental = dataclasses.replace(rental, **json.loads(extra))
                self._cache[rental_id] = rental
        return rental

    def upsert(self, rental: Rental) -> None:
        self._storage.put_rental(
            rental.rental_id, rental.agent, rental.gpu_count, rental.region,
            rental.grid_intensity_g_per_kwh, rental.start_ms,
        )
        extra = {name: getattr(rental, name) for name in _EXTRA_FIELDS}
        self._storage.put_rental_terms(rental.rental_id, json.dumps(extra, sort_keys=True))
        self._cache[rental.rental_id] = rental
