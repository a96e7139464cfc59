#!/usr/bin/env python3
"""Settlement gas overhead per GPU-hour at the node's default settling policy, on an L2 and on L1.

Pure arithmetic over ``oracle.node.settle_policy`` (the node's own rule) and the measured gas of
one report in a ``settleBatch`` (reports/gas.json ``settle_batch_100_per_rental``): for each
chain's gas price and rental size, how often a rental settles (the value rule, bounded by the
maximum interval and by the node's round), what the gas costs per GPU-hour, and as a share of the
rental's price. ``python tools/settle_overhead.py`` prints the README's table.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from oracle.node.settle_policy import RentalEconomics, SettlePolicy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GWEI = 10**9
USD = 10**6  # a 6-decimals USD payment token
PRICE_PER_GPU_HOUR = 2 * USD  # an H100 at 2 USD per GPU-hour
ROUND_S = 60  # the node's default settle_interval_s
CHAINS = (("L2", GWEI // 100), ("L1", 20 * GWEI))  # 0.01 gwei, 20 gwei
SILENCE_TIMEOUTS_S = (3_600, 7 * 86_400)  # the deployment default, and a week


@dataclass(frozen=True)
class Row:
    chain: str
    gas_price_wei: int
    gpus: int
    silence_timeout_s: int
    interval_s: int
    gas_usd_per_gpu_hour: float
    overhead_pct: float


def measured_gas_per_report() -> int:
    return int(json.loads((ROOT / "reports" / "gas.json").read_text())["settle_batch_100_per_rental"])


def rows(policy: SettlePolicy | None = None) -> list[Row]:
    policy = policy or SettlePolicy(gas_per_report=measured_gas_per_report())
    out = []
    for chain, gas_price in CHAINS:
        for silence in SILENCE_TIMEOUTS_S:
            for gpus in (1, 8):
                economics = RentalEconomics(gpus, PRICE_PER_GPU_HOUR, 0, silence)
                interval = max(ROUND_S, policy.seconds_until_worth(economics, gas_price))
                gas_units = policy.gas_cost(gas_price)  # token units per settlement
                per_gpu_hour = gas_units * 3600 / interval / gpus / USD
                overhead = 100 * gas_units / economics.owed_since(interval)
                out.append(Row(chain, gas_price, gpus, silence, interval, per_gpu_hour, overhead))
    return out


def _duration(seconds: int) -> str:
    if seconds % 86_400 == 0:
        return f"{seconds // 86_400} d"
    if seconds >= 3600:
        return f"{seconds // 3600} h" if seconds % 3600 == 0 else f"{seconds / 3600:.1f} h"
    return f"{seconds // 60} min" if seconds % 60 == 0 and seconds >= 600 else f"{seconds} s"


def markdown(policy: SettlePolicy | None = None) -> str:
    lines = ["| chain (gas price) | silence timeout | GPUs | settles every | gas USD per GPU-hour | "
             "overhead (% of 2 USD/GPU-h) |", "|---|---|---|---|---|---|"]
    for r in rows(policy):
        price = f"{r.gas_price_wei / GWEI:g} gwei"
        lines.append(f"| {r.chain} ({price}) | {_duration(r.silence_timeout_s)} | {r.gpus} | "
                     f"{_duration(r.interval_s)} | {r.gas_usd_per_gpu_hour:.5f} | {r.overhead_pct:.2f} % |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
