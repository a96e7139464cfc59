"""Where the daemon reads a rental's committed ``workloadHash`` back from ``rentalTerms`` (the
renter commits it in ``openRental``, :func:`oracle.actions.rentals.open_rental`). Adapts to the
deployed ABI, so a market without the commitment (before issue 10) is detected instead of misread."""

from __future__ import annotations

from typing import Any


def _function(abi: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    for item in abi:
        if item.get("type") == "function" and item.get("name") == name:
            return item
    return None


def committed_workload_hash(client: Any, rental_id: int) -> bytes | None:
    """The rental's committed ``workloadHash`` (zero bytes = none), or None where the market
    has no ``rentalTerms(...).workloadHash``."""
    fn = _function(client.abi, "rentalTerms")
    if fn is None or not any(c.get("name") == "workloadHash" for c in fn["outputs"][0].get("components", [])):
        return None
    return bytes(client.view("rentalTerms", rental_id)["workloadHash"])
