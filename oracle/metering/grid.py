"""Grid carbon intensity by region: a pluggable source, with a static yearly table by default.

A source must give every node the same integer for the same region, or the signed carbon
figures differ; a live source has to pin its answer (for example per rental, at rental start).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Mapping, Protocol, runtime_checkable

from oracle.errors import MeteringError


@runtime_checkable
class GridIntensitySource(Protocol):
    """Anything that maps a region to a whole number of gCO2e per kWh."""

    def g_per_kwh(self, region: str | None = None) -> int:
        """The intensity of ``region``; ``None`` asks for the source's default."""
        ...


class StaticGridIntensity:
    """A fixed region -> gCO2e/kWh table; by default the one in ``oracle/metering/data/``.

    Regions are ISO 3166-1 alpha-2 codes (case-insensitive) plus ``WORLD``. An unknown region
    is an error, not a silent fallback: ask for the default explicitly with ``None``.
    """

    def __init__(self, table: Mapping[str, int] | None = None, default: str | None = None) -> None:
        if table is None:
            table, default = _load_default_table()
        clean: dict[str, int] = {}
        for region, value in table.items():
            if type(value) is not int or value < 0:
                raise MeteringError(f"grid intensity of {region!r} must be a non-negative int")
            clean[region.upper()] = value
        if not clean:
            raise MeteringError("empty grid intensity table")
        self._table = clean
        self.default_region = (default or next(iter(clean))).upper()
        if self.default_region not in clean:
            raise MeteringError(f"default region {default!r} is not in the table")

    @classmethod
    def default(cls) -> "StaticGridIntensity":
        return cls()

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(sorted(self._table))

    def g_per_kwh(self, region: str | None = None) -> int:
        key = self.default_region if region is None else region.strip().upper()
        try:
            return self._table[key]
        except KeyError:
            raise MeteringError(
                f"unknown grid region {region!r}; known: {', '.join(self.regions)}"
            ) from None


def _load_default_table() -> tuple[dict[str, int], str]:
    text = resources.files("oracle.metering").joinpath("data/grid_intensity.json").read_text()
    data = json.loads(text)
    table = {region: entry["g_per_kwh"] for region, entry in data["regions"].items()}
    return table, data["default"]
