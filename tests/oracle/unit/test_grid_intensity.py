"""Grid carbon intensity: the static default table and the pluggable source protocol."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from oracle.errors import MeteringError
from oracle.metering import GridIntensitySource, StaticGridIntensity


def test_static_grid_intensity_default_table_has_a_dozen_sourced_regions():
    data = json.loads(resources.files("oracle.metering").joinpath(
        "data/grid_intensity.json").read_text())
    assert len(data["regions"]) >= 12
    assert data["default"] in data["regions"]
    for region, entry in data["regions"].items():
        assert type(entry["g_per_kwh"]) is int and 0 <= entry["g_per_kwh"] < 2000, region
        assert entry["source"] in data["sources"], region


def test_static_grid_intensity_looks_regions_up_case_insensitively():
    table = StaticGridIntensity.default()
    assert table.g_per_kwh("FR") == table.g_per_kwh(" fr ") == 56
    assert table.g_per_kwh(None) == table.g_per_kwh("WORLD")
    assert table.default_region == "WORLD"


def test_static_grid_intensity_refuses_an_unknown_region():
    with pytest.raises(MeteringError, match="unknown grid region"):
        StaticGridIntensity.default().g_per_kwh("ATLANTIS")


@pytest.mark.parametrize("table", [{}, {"X": -1}, {"X": 1.5}, {"X": True}])
def test_static_grid_intensity_refuses_a_bad_table(table):
    with pytest.raises(MeteringError):
        StaticGridIntensity(table)


def test_static_grid_intensity_is_a_grid_intensity_source():
    assert isinstance(StaticGridIntensity({"ZZ": 10}), GridIntensitySource)

    class Pinned:
        def g_per_kwh(self, region=None):
            return 123

    assert isinstance(Pinned(), GridIntensitySource)
