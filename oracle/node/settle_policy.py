"""When a rental is worth settling: value against gas, or a maximum interval (pure, integers).

A rental is due when what it owes since its last settlement is worth the gas of settling it,
``gas_per_report * gas_price_wei`` (converted to payment-token units) at most
``max_gas_cost_bps`` of the amount (default 100 = 1 %), or when ``max_interval_s`` has passed
since its last settlement, whichever comes first. The interval is also kept below half the
rental's silence timeout, so a rental never looks abandoned because it was cheap.

What it owes is estimated without any RPC from the rental's immutable terms: its GPU count at
its GPU-hour price for the seconds since the last settlement (energy is left out, so the
estimate is never above what a fully available rental owes: settling happens no earlier than
the ratio allows). Gas per report is the measured cost of one report in a ``settleBatch``
(``reports/gas.json``; a test keeps :data:`GAS_PER_BATCHED_REPORT` equal to it).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Reports per ``settleBatch`` by default: 200 first settlements at the measured 11,773 gas each
#: (reports/gas.json, ``settle_batch_100_distinct_providers_first_per_rental``) is 2.4 M gas, far
#: under a 30 M-gas block and under the contract's cap of 256 reports per settleBatch.
DEFAULT_MAX_REPORTS_PER_TX = 200
#: reports/gas.json ``settle_batch_100_per_rental`` (receipt gas of a 100-report settleBatch / 100).
GAS_PER_BATCHED_REPORT = 11_761
#: reports/gas.json ``settle_single_3of5`` (one report, settled alone).
GAS_PER_SINGLE_REPORT = 59_676
WEI_PER_ETH = 10**18


@dataclass(frozen=True, slots=True)
class RentalEconomics:
    """What settling a rental is worth per second, from its on-chain terms (never change)."""

    gpu_count: int
    price_per_gpu_hour: int  # payment-token units
    started_at_s: int
    silence_timeout_s: int | None = None  # the rental's, when known

    def owed_since(self, seconds: int) -> int:
        """Token units a fully available rental owes for ``seconds`` (floor, like the contract)."""
        return self.gpu_count * max(0, seconds) * self.price_per_gpu_hour // 3600


@dataclass(frozen=True, slots=True)
class SettlePolicy:
    max_gas_cost_bps: int = 100  # gas at most 1 % of the amount settled
    max_interval_s: int = 6 * 3600
    gas_per_report: int = GAS_PER_BATCHED_REPORT
    token_units_per_eth: int = 3_000 * 10**6  # a 6-decimals USD token at 3,000 USD per ETH

    def __post_init__(self) -> None:
        if not 1 <= self.max_gas_cost_bps <= 10_000:
            raise ValueError("max_gas_cost_bps must be in 1..10000")
        if self.max_interval_s < 1 or self.gas_per_report < 1 or self.token_units_per_eth < 1:
            raise ValueError("max_interval_s, gas_per_report and token_units_per_eth must be >= 1")

    def gas_cost(self, gas_price_wei: int) -> int:
        """Token units one report's settlement gas costs (rounded up: never under-estimated)."""
        wei = self.gas_per_report * gas_price_wei
        return -(-wei * self.token_units_per_eth // WEI_PER_ETH)

    def interval_cap_s(self, economics: RentalEconomics) -> int:
        cap = self.max_interval_s
        if economics.silence_timeout_s:
            cap = min(cap, max(1, economics.silence_timeout_s // 2))
        return cap

    def is_due(self, economics: RentalEconomics, last_settled_at_s: int, now_s: int, gas_price_wei: int) -> bool:
        since = now_s - last_settled_at_s
        if since >= self.interval_cap_s(economics):
            return True
        owed = economics.owed_since(since)
        return owed > 0 and self.gas_cost(gas_price_wei) * 10_000 <= owed * self.max_gas_cost_bps

    def seconds_until_worth(self, economics: RentalEconomics, gas_price_wei: int) -> int:
        """Seconds of accrual after which the value rule alone makes a rental due."""
        per_hour = economics.gpu_count * economics.price_per_gpu_hour
        if per_hour == 0:
            return self.interval_cap_s(economics)
        need = -(-self.gas_cost(gas_price_wei) * 10_000 // self.max_gas_cost_bps)  # owed >= need
        seconds = -(-need * 3600 // per_hour)
        return min(seconds, self.interval_cap_s(economics))

    def overhead_bps(self, economics: RentalEconomics, gas_price_wei: int) -> int:
        """Gas per amount settled at this policy, in basis points (what the README reports)."""
        seconds = self.seconds_until_worth(economics, gas_price_wei)
        owed = economics.owed_since(seconds)
        return 10_000 if owed == 0 else -(-self.gas_cost(gas_price_wei) * 10_000 // owed)
