"""How transactions are priced, retried and awaited (``TxPolicy``), and a replacement's fees."""

from __future__ import annotations

from dataclasses import dataclass

GWEI = 10**9


@dataclass(frozen=True)
class TxPolicy:
    """How transactions are priced, retried and awaited."""

    max_fee_per_gas_cap_wei: int = 500 * GWEI
    priority_fee_wei: int | None = None  # None: ask the node (eth_maxPriorityFeePerGas)
    default_priority_fee_wei: int = 1 * GWEI  # when the node cannot say
    max_priority_fee_cap_wei: int = 50 * GWEI
    base_fee_multiplier: int = 2
    legacy: bool | None = None  # None: detect from the latest block's baseFeePerGas
    gas_margin_bps: int = 2_000  # +20 % over the estimate
    receipt_timeout_s: float = 120.0
    receipt_poll_s: float = 0.1
    rebroadcast_after_s: float = 2.0  # a sent tx the node no longer knows is sent again
    confirmations: int = 0  # blocks on top of a receipt before it counts (reorged out: rebroadcast)
    max_fee_bumps: int = 3
    fee_bump_bps: int = 1_250  # +12.5 %: nodes want >= 10 % for a replacement
    rpc_retries: int = 5
    backoff_base_s: float = 0.2
    backoff_max_s: float = 5.0
    nonce_retries: int = 3


def bumped_fees(fees: dict[str, int], p: TxPolicy) -> dict[str, int] | None:
    """Fees raised for a replacement, or None when the cap leaves no room to bump."""
    cap = p.max_fee_per_gas_cap_wei

    def up(v: int) -> int:
        return v + max(1, v * p.fee_bump_bps // 10_000)

    if "gasPrice" in fees:
        new = up(fees["gasPrice"])
        return None if new > cap else {"gasPrice": new}
    new_max, new_tip = up(fees["maxFeePerGas"]), up(fees["maxPriorityFeePerGas"])
    if new_max > cap:
        return None
    return {"maxFeePerGas": new_max, "maxPriorityFeePerGas": min(new_tip, new_max)}
