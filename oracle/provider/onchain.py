"""The two places issue 10 touches the market: the renter commits ``workloadHash`` in
``openRental``, and the daemon reads it back from ``rentalTerms``. Both adapt to the deployed
ABI, so a market without the commitment (before issue 10) is detected instead of misread."""

from __future__ import annotations

from typing import Any

from oracle.provider import ProviderError
from oracle.provider.workload import ZERO_HASH


def _function(abi: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    for item in abi:
        if item.get("type") == "function" and item.get("name") == name:
            return item
    return None


def market_commits_workloads(abi: list[dict[str, Any]]) -> bool:
    fn = _function(abi, "openRental")
    return fn is not None and any(p.get("name") == "workloadHash" for p in fn["inputs"])


def open_rental(market: Any, offer_id: int, offer_version: int, gpu_count: int, budget: int,
                workload_hash: bytes | None) -> Any:
    """``openRental`` through a ``BoundContract``, with ``workloadHash`` where the market takes one.

    A workload on a market that cannot commit to it is refused: the renter would have no proof
    of what it asked the provider to run.
    """
    if market_commits_workloads(market.abi):
        return market.transact("openRental", offer_id, offer_version, gpu_count, budget,
                               bytes(workload_hash or ZERO_HASH))
    if workload_hash is not None and bytes(workload_hash) != ZERO_HASH:
        raise ProviderError("this market's openRental takes no workloadHash (deployed before issue 10): "
                            "a workload cannot be committed on it")
    return market.transact("openRental", offer_id, offer_version, gpu_count, budget)


def committed_workload_hash(client: Any, rental_id: int) -> bytes | None:
    """The rental's committed ``workloadHash`` (zero bytes = none), or None where the market
    has no ``rentalTerms(...).workloadHash``."""
    fn = _function(client.abi, "rentalTerms")
    if fn is None or not any(c.get("name") == "workloadHash" for c in fn["outputs"][0].get("components", [])):
        return None
    return bytes(client.view("rentalTerms", rental_id)["workloadHash"])
