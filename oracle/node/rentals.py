"""The rentals a node meters: who may sign their telemetry, how many GPUs, where, since when.

For now seeded from settings; the chain follower will feed the same interface from contract
events (``RentalRegistry.upsert``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from oracle.node.storage import NodeStorage


@dataclass(frozen=True, slots=True)
class Rental:
    rental_id: int
    agent: str  # checksummed address registered in the offer
    gpu_count: int
    region: str
    grid_intensity_g_per_kwh: int
    start_ms: int


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
                self._cache[rental_id] = rental
        return rental

    def upsert(self, rental: Rental) -> None:
        self._storage.put_rental(
            rental.rental_id, rental.agent, rental.gpu_count, rental.region,
            rental.grid_intensity_g_per_kwh, rental.start_ms,
        )
        self._cache[rental.rental_id] = rental
