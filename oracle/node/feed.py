"""The node's view of the market's rentals, fed from chain events: what each rental's metering
depends on (its terms, fixed on chain) and which rentals may still settle.

Nodes agree by construction: everything metering depends on (agent, GPU count and model, power
limit, region, grid intensity, start time, SLA) comes from :func:`read_rental_terms`, the one
place that reads a rental's terms. With the market's ``rentalTerms(rentalId)`` (terms fixed at
``openRental``) it reads only those; on a market without it, the offer is read *as of the block
of the ``RentalStarted`` event* (never the live offer), so an offer update after the start
cannot split two nodes that read at different times.

A lagging RPC backend (a load-balanced endpoint whose backend has not seen the block yet)
answers a rental the node already saw in an event with an empty struct (``startedAt = 0``):
that answer is retried with backoff (:class:`RentalNotVisibleYet`), never taken as the rental.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, fields
from typing import Any, Callable, Sequence

from web3 import Web3

from oracle.chain.events import ChainEvent, CursorStore
from oracle.errors import ChainError, ConfigError
from oracle.node.rentals import Rental
from oracle.node.settle_policy import RentalEconomics

log = logging.getLogger(__name__)


class RentalNotVisibleYet(ChainError):
    """The RPC answered an empty rental for one an event named (a lagging backend): retry later."""


def bytes32_text(value: bytes) -> str:
    """A left-aligned, zero-padded bytes32 label (``region``, ``gpuModel``) as text."""
    return bytes(value).rstrip(b"\0").decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class RentalTerms:
    """A rental's terms as fixed on chain (units in the names; text labels decoded)."""

    rental_id: int
    agent: str
    gpu_model: str
    gpu_count: int
    power_limit_w: int
    memory_mib: int
    region: str
    grid_intensity_g_per_kwh: int
    min_uptime_bps: int
    max_gap_seconds: int
    slash_window_seconds: int
    silence_timeout_s: int | None
    workload_hash: bytes
    started_at_s: int
    price_per_gpu_hour: int
    price_per_kwh: int

    @property
    def start_ms(self) -> int:
        return self.started_at_s * 1000

    def registry_entry(self) -> Rental:
        """The node registry's :class:`Rental`: every field it has, filled from these terms."""
        mine = {f: getattr(self, f) for f in RentalTerms.__dataclass_fields__} | {"start_ms": self.start_ms}
        return Rental(**{f.name: mine[f.name] for f in fields(Rental) if f.name in mine})

    def economics(self) -> RentalEconomics:
        return RentalEconomics(self.gpu_count, self.price_per_gpu_hour, self.started_at_s, self.silence_timeout_s)


def _power_limit_w(gpu_model: str, stated: int | None) -> int:
    if stated:
        return int(stated)
    from oracle.gpu_models import gpu_model as lookup

    try:
        return lookup(gpu_model).power_limit_w
    except ConfigError:
        return 0  # an unregistered model: metering falls back to the batch's board limit


def read_rental_terms(client: Any, rental_id: int, *, started_block: int | str = "latest") -> RentalTerms:
    """The rental's terms from the chain: ``rentalTerms`` when the market has it, else the
    rental plus its offer as of ``started_block`` (the block of its ``RentalStarted``).

    Raises :class:`RentalNotVisibleYet` when the RPC answers the rental as not started.
    """
    rental = client.get_rental(rental_id)
    started_at = int(rental.get("startedAt", 0) or 0)
    if started_at == 0:
        raise RentalNotVisibleYet(f"rental {rental_id}: the RPC answers it as not started (lagging backend?)")
    market = getattr(client, "market", None)
    if market is not None and market.has_function("rentalTerms"):
        t = client.view("rentalTerms", rental_id)
        source, silence = t, t.get("silenceTimeout")
    else:
        source = client.view("getOffer", int(rental["offerId"]), block=started_block)
        silence = None
        try:
            silence = int(client.params().get("silenceTimeout", 0)) or None
        except (ChainError, AttributeError, TypeError):
            silence = None
    if int(source.get("agent", "0x" + "0" * 40), 16) == 0:
        raise RentalNotVisibleYet(f"rental {rental_id}: the RPC answers its terms empty (lagging backend?)")
    gpu_model = bytes32_text(source.get("gpuModel", b""))
    return RentalTerms(
        rental_id=rental_id,
        agent=Web3.to_checksum_address(source["agent"]),
        gpu_model=gpu_model,
        gpu_count=int(source.get("gpuCount") or rental["gpuCount"]),
        power_limit_w=_power_limit_w(gpu_model, source.get("powerLimitW")),
        memory_mib=int(source.get("memoryMib", 0) or 0),
        region=bytes32_text(source.get("region", b"")),
        grid_intensity_g_per_kwh=int(source.get("gridIntensityGPerKwh", 0) or 0),
        min_uptime_bps=int(source.get("minUptimeBps", 0) or 0),
        max_gap_seconds=int(source.get("maxGapSeconds", 0) or 0),
        slash_window_seconds=int(source.get("slashWindowSeconds", 0) or 0),
        silence_timeout_s=int(silence) if silence else None,
        workload_hash=bytes(source.get("workloadHash", b"\0" * 32)),
        started_at_s=started_at,
        price_per_gpu_hour=int(rental.get("pricePerGpuHour", 0) or 0),
        price_per_kwh=int(rental.get("pricePerKwh", 0) or 0),
    )


class RentalRegistryFeed:
    """Feeds a node's ``RentalRegistry`` (``oracle.node.rentals``) from market events, and keeps
    the set of rentals that may still settle.

    On ``RentalStarted`` the rental's terms are read (:func:`read_rental_terms`, pinned to the
    event's block) and upserted; ``upsert`` is idempotent, so re-delivery after a restart or a
    rewind is harmless. ``registries`` may be several (one per node DB). ``RentalEnded`` keeps
    the rental settleable (its final report may settle within the grace); ``RentalFinalized``
    and ``RentalCancelled`` drop it. With a ``store`` the statuses persist beside the follower's
    cursor, so a restarted node still knows its active rentals.

    A rental the RPC does not show yet is retried ``retries`` times with backoff before the
    event fails (the follower then retries the whole range later: its cursor has not moved).
    """

    def __init__(self, client: Any, registries: Sequence[Any], *, store: CursorStore | None = None,
                 name: str = "market", retries: int = 5, backoff_s: float = 0.2,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client  # oracle.chain.client.MarketClient
        self.registries = list(registries)
        self.store = store
        self.name = name
        self.retries = retries
        self.backoff_s = backoff_s
        self._sleep = sleep
        self.started: dict[int, int] = {}
        self.terms: dict[int, RentalTerms] = {}
        self.status: dict[int, str] = store.rental_statuses(name) if store is not None else {}

    def _set(self, rental_id: int, status: str) -> None:
        self.status[rental_id] = status
        if self.store is not None:
            self.store.set_rental_status(self.name, rental_id, status)

    def settleable(self) -> list[int]:
        """Rentals started and not yet finalized (Active, or Ended within the grace)."""
        return sorted(r for r, s in self.status.items() if s in ("active", "ended"))

    def is_ended(self, rental_id: int) -> bool:
        return self.status.get(rental_id) == "ended"

    def economics(self, rental_id: int) -> RentalEconomics | None:
        terms = self.terms.get(rental_id)
        return None if terms is None else terms.economics()

    def _terms(self, rental_id: int, block: int) -> RentalTerms:
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                return read_rental_terms(self.client, rental_id, started_block=block)
            except RentalNotVisibleYet:
                if attempt == self.retries:
                    raise
                log.info("rental %d not visible on the RPC yet; retrying in %.2f s", rental_id, delay)
                self._sleep(delay)
                delay = min(5.0, delay * 2)
        raise AssertionError("unreachable")

    def __call__(self, event: ChainEvent) -> None:
        if event.name in ("RentalFinalized", "RentalCancelled"):
            self._set(int(event.args["rentalId"]), "closed")
            return
        if event.name == "RentalEnded":
            rental_id = int(event.args["rentalId"])
            self._set(rental_id, "ended")
            self._record_end(rental_id, int(event.args["endedAt"]))
            return
        if event.name != "RentalStarted":
            return
        rental_id = int(event.args["rentalId"])
        terms = self._terms(rental_id, event.block_number)
        entry = terms.registry_entry()
        for registry in self.registries:
            registry.upsert(entry)
        self.terms[rental_id] = terms
        self.started[rental_id] = terms.started_at_s
        if self.status.get(rental_id) not in ("ended", "closed"):
            self._set(rental_id, "active")

    def _record_end(self, rental_id: int, ended_at_s: int) -> None:
        """Samples after ``endedAt`` (its whole second) are no longer the rental's: a report
        with ``periodEnd <= endedAt`` is the same whether or not a node has seen the end."""
        from dataclasses import replace

        for registry in self.registries:
            rental = registry.get(rental_id)
            if rental is not None and rental.end_ms is None:
                registry.upsert(replace(rental, end_ms=ended_at_s * 1000 + 999))

    def on_rewind(self, first_invalid_block: int) -> None:
        """Statuses are re-derived as the rewound blocks' events are re-delivered."""
