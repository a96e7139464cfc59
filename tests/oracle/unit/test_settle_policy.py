"""Settling driven by value (issue 9): a rental settles when what it owes is worth the gas (default:
gas at most 1 % of the amount) or when its maximum interval passes, whichever comes first; the
README's overhead table is what the node's own rule computes."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from oracle.node.settle_policy import (
    DEFAULT_MAX_REPORTS_PER_TX,
    GAS_PER_BATCHED_REPORT,
    GAS_PER_SINGLE_REPORT,
    RentalEconomics,
    SettlePolicy,
)
from oracle.node.settlement_loop import DueRentals

ROOT = Path(__file__).resolve().parents[3]
GWEI = 10**9
USD = 10**6
H100 = RentalEconomics(gpu_count=1, price_per_gpu_hour=2 * USD, started_at_s=1_000, silence_timeout_s=7 * 86_400)


def test_gas_per_report_constants_are_the_measured_ones():
    gas = json.loads((ROOT / "reports" / "gas.json").read_text())
    assert GAS_PER_BATCHED_REPORT == gas["settle_batch_100_per_rental"]
    assert GAS_PER_SINGLE_REPORT == gas["settle_single_3of5"]
    from oracle.node.settings import NodeSettings

    fields = NodeSettings.model_fields
    assert fields["settle_gas_per_report"].default == GAS_PER_BATCHED_REPORT
    assert fields["settle_max_reports_per_tx"].default == DEFAULT_MAX_REPORTS_PER_TX


def test_a_rental_settles_once_the_gas_is_at_most_one_percent_of_what_it_owes():
    policy = SettlePolicy()
    gas_price = GWEI // 100  # 0.01 gwei: 11,761 gas cost 353 token units (0.000353 USD)
    assert policy.gas_cost(gas_price) == 353
    worth = policy.seconds_until_worth(H100, gas_price)
    assert H100.owed_since(worth) * 100 >= 353 * 10_000 > H100.owed_since(worth - 1) * 100
    assert not policy.is_due(H100, 1_000, 1_000 + worth - 1, gas_price)
    assert policy.is_due(H100, 1_000, 1_000 + worth, gas_price)


def test_a_rental_not_worth_its_gas_settles_when_its_maximum_interval_passes():
    policy = SettlePolicy(max_interval_s=6 * 3600)
    gas_price = 20 * GWEI  # L1: one settlement costs 0.71 USD, worth 71 USD of usage (35 h of one H100)
    assert not policy.is_due(H100, 1_000, 1_000 + 6 * 3600 - 1, gas_price)
    assert policy.is_due(H100, 1_000, 1_000 + 6 * 3600, gas_price)


def test_the_interval_stays_under_half_the_rental_silence_timeout():
    policy = SettlePolicy(max_interval_s=6 * 3600)
    short = RentalEconomics(1, 2 * USD, 0, silence_timeout_s=3600)
    assert policy.interval_cap_s(short) == 1800
    assert policy.is_due(short, 0, 1800, 20 * GWEI)


def test_policy_refuses_out_of_range_values():
    with pytest.raises(ValueError):
        SettlePolicy(max_gas_cost_bps=0)
    with pytest.raises(ValueError):
        SettlePolicy(max_interval_s=0)


def test_due_rentals_defer_a_rental_until_it_is_worth_settling_and_never_an_ended_one():
    now = [1_000]
    ended = {2}
    economics = {1: H100, 2: H100, 3: RentalEconomics(8, 2 * USD, 1_000, 7 * 86_400)}
    due = DueRentals(lambda: [1, 2, 3], policy=SettlePolicy(), economics=economics.get,
                     gas_price_wei=lambda: GWEI // 100, is_ended=ended.__contains__, wall_clock=lambda: now[0])
    now[0] = 1_000 + 30  # 30 s: one H100 owes 0.0167 USD (gas is 2.5 %); eight owe 0.133 USD (0.31 %)
    assert sorted(due()) == [2, 3]
    assert due.deferred_by_value == 1
    now[0] = 1_000 + 80  # one H100 is worth its gas (1 %) from 75 s
    assert sorted(due()) == [1, 2, 3]


def test_readme_reports_the_overhead_table_the_policy_computes():
    spec = importlib.util.spec_from_file_location("settle_overhead", ROOT / "tools" / "settle_overhead.py")
    tool = importlib.util.module_from_spec(spec)
    sys.modules["settle_overhead"] = tool  # dataclasses look their module up
    spec.loader.exec_module(tool)
    table = tool.markdown()
    assert table in (ROOT / "README.md").read_text()
    l2_one_gpu = next(r for r in tool.rows() if r.chain == "L2" and r.gpus == 1)
    assert l2_one_gpu.overhead_pct <= 1.0  # the default ratio holds on an L2
