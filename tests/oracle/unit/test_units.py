"""oracle.units: amounts, times and physical quantities as a person reads them (SPEC-R4 §3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oracle.units import (
    UINT256_MAX,
    format_amount,
    format_bps,
    format_carbon,
    format_duration,
    format_energy,
    format_gpu_hours,
    format_power_w,
    format_time,
    parse_amount,
    with_display,
)


@pytest.mark.parametrize("units, decimals, symbol, text", [
    (12_500_000, 6, "tUSD", "12.5 tUSD"),
    (0, 6, "tUSD", "0 tUSD"),
    (1_000_000_000_000, 6, "tUSD", "1,000,000 tUSD"),
    (1, 18, "WETH", "0.000000000000000001 WETH"),
    (123_456_789, 2, "", "1,234,567.89"),
    (5, 0, "X", "5 X"),
    (-2_500_000, 6, "tUSD", "-2.5 tUSD"),
])
def test_format_amount_is_exact_trims_zeros_and_separates_thousands(units, decimals, symbol, text):
    assert format_amount(units, decimals, symbol) == text


@given(units=st.integers(min_value=0, max_value=UINT256_MAX), decimals=st.integers(min_value=0, max_value=36))
def test_parse_amount_inverts_format_amount_exactly(units, decimals):
    assert parse_amount(format_amount(units, decimals, "T").removesuffix(" T"), decimals) == units


@pytest.mark.parametrize("text, decimals, units", [
    ("2.5", 6, 2_500_000), ("1_000", 6, 1_000_000_000), ("1,000.25", 2, 100_025), ("0", 18, 0),
    (" 7 ", 0, 7), ("1e3", 2, 100_000),
])
def test_parse_amount_reads_token_units(text, decimals, units):
    assert parse_amount(text, decimals) == units


@pytest.mark.parametrize("text, words", [
    ("-1", "negative"), ("abc", "not a number"), ("", "give an amount"), ("nan", "not a finite"),
    ("inf", "not a finite"), ("-inf", "not a finite"), ("1.0000001", "more than 6 decimals"),
    ("1e30000", "too large"), (str(UINT256_MAX), "too large"), ("1e72", "too large"), ("0x10", "not a number"),
])
def test_parse_amount_refuses_bad_text_with_a_sentence_naming_the_option(text, words):
    with pytest.raises(ValueError) as info:
        parse_amount(text, 6, "--budget")
    message = str(info.value)
    assert message.startswith("--budget: ") and words in message and "\n" not in message


def test_parse_amount_honours_a_narrower_type_bound():
    assert parse_amount("79228162514.264337593543950335", 18, max_units=2**96 - 1) == 2**96 - 1
    with pytest.raises(ValueError, match="too large"):
        parse_amount("79228162515", 18, max_units=2**96 - 1)


@pytest.mark.parametrize("seconds, text", [
    (0, "0 s"), (45, "45 s"), (60, "1 min"), (125, "2 min 5 s"), (12_000, "3 h 20 min"),
    (3_605, "1 h"), (86_400, "1 d"), (90_061, "1 d 1 h"), (30 * 86_400, "30 d"), (-300, "-5 min"),
])
def test_format_duration_gives_the_two_largest_units(seconds, text):
    assert format_duration(seconds) == text


def test_format_time_gives_a_utc_date_and_how_far_it_is():
    now = 1_796_031_300  # 2026-11-30 09:35 UTC
    assert format_time(now + 12_000, now) == "2026-11-30 12:55 UTC (in 3 h 20 min)"
    assert format_time(now - 300, now) == "2026-11-30 09:30 UTC (5 min ago)"
    assert format_time(now, now) == "2026-11-30 09:35 UTC (now)"
    assert format_time(0, now) == "never"


@pytest.mark.parametrize("bps, text", [(250, "2.5 %"), (10_000, "100 %"), (0, "0 %"), (9_821, "98.21 %"), (1, "0.01 %")])
def test_format_bps_is_a_percentage(bps, text):
    assert format_bps(bps) == text


@pytest.mark.parametrize("mj, text", [
    (0, "0 mJ"), (999, "999 mJ"), (1_500, "1.5 J"), (35_900_000, "35.9 kJ"), (4_428_000_000, "1.23 kWh"),
    (3_600_000_000, "1 kWh"), (360_000_000_000, "100 kWh"), (7_200_000_000_000, "2 MWh"),
])
def test_format_energy_picks_a_readable_unit(mj, text):
    assert format_energy(mj) == text


@pytest.mark.parametrize("mg, text", [
    (12_300, "12.3 g CO2e"), (500, "500 mg CO2e"), (2_500_000, "2.5 kg CO2e"), (3_000_000_000, "3 t CO2e"),
])
def test_format_carbon_picks_a_readable_unit(mg, text):
    assert format_carbon(mg) == text


def test_format_power_and_gpu_hours():
    assert format_power_w(350) == "350 W"
    assert format_power_w(2_400) == "2.4 kW"
    assert format_gpu_hours(110) == "0.0306 GPU-h"
    assert format_gpu_hours(36_000) == "10 GPU-h"
    assert format_gpu_hours(0) == "0 GPU-h"


def test_with_display_keeps_raw_values_and_adds_display_strings_beside_them():
    data = {"budget": 5_000_000, "fee_bps": 250, "note": "x", "ended_at": None}
    out = with_display(data, {"budget": lambda v: format_amount(v, 6, "tUSD"), "fee_bps": format_bps,
                              "ended_at": str})
    assert list(out) == ["budget", "budget_display", "fee_bps", "fee_bps_display", "note", "ended_at"]
    assert out["budget"] == 5_000_000 and out["budget_display"] == "5 tUSD"
    assert out["fee_bps_display"] == "2.5 %"
