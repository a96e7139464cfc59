"""The market query over a synthetic index (the benchmark's generator, fed through the same
derive path as the follower): every sort key orders as the raw values do, ties by offer id,
filters keep exactly the offers that pass them, paging is consistent."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from oracle.web.market import RANGE_FILTERS, SORTS, MarketQuery, QueryError, search_offers
from oracle.web.store import IndexStore

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_web", ROOT / "tools" / "bench_web.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    bench = _bench()
    store = IndexStore(tmp_path_factory.mktemp("market") / "web-index.sqlite")
    store.add_events(bench.events(600, 60, seed=3))
    yield store
    store.close()


def all_offers(store) -> list[dict]:
    total, rows = search_offers(store.conn, MarketQuery(sort="offer_id", limit=200))
    out = list(rows)
    while len(out) < total:
        out += search_offers(store.conn, MarketQuery(sort="offer_id", limit=200, offset=len(out)))[1]
    return out


RAW = {  # sort key -> the raw value of an offer row it orders by
    "offer_id": lambda r: r["offer_id"], "gpu_model": lambda r: r["gpu_model"], "gpu_count": lambda r: r["gpu_count"],
    "memory_mib": lambda r: r["memory_mib"], "price_per_gpu_hour": lambda r: int(r["price_gpu_hour"]),
    "price_per_kwh": lambda r: int(r["price_kwh"]), "effective_price_per_gpu_hour": lambda r: int(r["eff"]),
    "effective_price_per_hour": lambda r: int(r["eff"]) * r["gpu_count"], "region": lambda r: r["region"],
    "grid_intensity_g_per_kwh": lambda r: r["grid"], "reputation_bps": lambda r: r["score_bps"],
    "uptime_bps": lambda r: r["uptime_bps"], "challenges_passed": lambda r: r["ch_pass"],
    "challenges_failed": lambda r: r["ch_fail"], "slash_count": lambda r: r["slash_count"],
    "max_duration_s": lambda r: r["max_duration"],
}


@pytest.mark.parametrize("key", sorted(RAW))
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_every_sort_key_orders_by_its_raw_value_then_offer_id(index, key, order):
    offers = all_offers(index)
    expected = sorted(offers, key=lambda r: (RAW[key](r), r["offer_id"]), reverse=order == "desc")
    total, page = search_offers(index.conn, MarketQuery(sort=key, order=order, limit=200, offset=100))
    assert total == len(offers) == 600
    assert [r["offer_id"] for r in page] == [r["offer_id"] for r in expected[100:300]]


def test_budget_hours_puts_most_hours_first_for_the_gpus_asked(index):
    offers = all_offers(index)
    budget, gpus = 50_000_000, 2
    hours = {r["offer_id"]: budget * 100 // (int(r["eff"]) * min(gpus, r["gpu_count"])) for r in offers}
    _, page = search_offers(index.conn, MarketQuery(sort="budget_hours", budget=budget, gpus=gpus, limit=50))
    got = [hours[r["offer_id"]] for r in page]
    assert got == sorted(hours.values(), reverse=True)[:50]


@pytest.mark.parametrize("name", sorted(RANGE_FILTERS))
def test_each_range_filter_keeps_exactly_the_offers_that_pass_it(index, name):
    offers = all_offers(index)
    field = {"min_gpu_count": "gpu_count", "min_memory_mib": "memory_mib", "max_price_per_gpu_hour": "price_per_gpu_hour",
             "max_price_per_kwh": "price_per_kwh", "max_effective_price_per_gpu_hour": "effective_price_per_gpu_hour",
             "max_grid_intensity_g_per_kwh": "grid_intensity_g_per_kwh", "min_reputation_bps": "reputation_bps",
             "min_uptime_bps": "uptime_bps", "max_challenges_failed": "challenges_failed",
             "max_slash_count": "slash_count", "min_max_duration_s": "max_duration_s"}[name]
    values = sorted(RAW[field](r) for r in offers)
    threshold = values[len(values) // 2]  # the median: keeps some, drops some
    keep = (lambda v: v >= threshold) if name.startswith("min_") else (lambda v: v <= threshold)
    expected = [r["offer_id"] for r in offers if keep(RAW[field](r))]
    total, page = search_offers(index.conn, MarketQuery(sort="offer_id", limit=200, ranges={name: threshold}))
    assert total == len(expected) and 0 < total < 600
    assert [r["offer_id"] for r in page] == expected[:200]


def test_model_region_and_text_filters_combine(index):
    offers = all_offers(index)
    model, region = offers[0]["gpu_model"], offers[0]["region"]
    expected = [r["offer_id"] for r in offers if r["gpu_model"] == model and r["region"] == region]
    total, page = search_offers(index.conn, MarketQuery(sort="offer_id", gpu_model=[model], region=[region]))
    assert total == len(expected) and [r["offer_id"] for r in page] == expected[:50]
    total_q, _ = search_offers(index.conn, MarketQuery(q="A100"))
    assert total_q == sum(1 for r in offers if "A100" in r["gpu_model"] or "A100" in r["region"])
    assert search_offers(index.conn, MarketQuery(q="%"))[0] == 0  # LIKE wildcards are literal


@pytest.mark.parametrize("query, field", [
    (MarketQuery(sort="colour"), "sort"), (MarketQuery(order="up"), "order"), (MarketQuery(limit=0), "limit"),
    (MarketQuery(limit=201), "limit"), (MarketQuery(offset=-1), "offset"), (MarketQuery(sort="budget_hours"), "sort"),
    (MarketQuery(ranges={"min_uptime_bps": -1}), "min_uptime_bps"), (MarketQuery(gpus=0), "gpus"),
])
def test_a_bad_query_names_its_field(index, query, field):
    with pytest.raises(QueryError) as info:
        search_offers(index.conn, query)
    assert info.value.field == field


def test_every_sort_key_is_tested():
    assert set(RAW) | {"budget_hours"} == set(SORTS)


def test_a_thinned_series_keeps_the_last_report_and_spaces_the_rest_evenly():
    from oracle.web.api_rentals import evenly

    rows = list(range(1, 10_001))
    picked = evenly(rows, 2_000)
    assert len(picked) == 2_000 and picked[-1] == 10_000 and picked == sorted(set(picked))
    gaps = {b - a for a, b in zip(picked, picked[1:])}
    assert gaps == {5}
    assert evenly(rows[:7], 10) == rows[:7]
