"""Plain reads of market state for the CLI and the web app, beside the typed views: the signer
set, the parameters, balances and claimable earnings. Callers above the actions layer read the
chain through these (or :mod:`oracle.actions.views`), never through the chain client itself.
"""

from __future__ import annotations

from typing import Any

from oracle.actions.context import MarketView
from oracle.chain.client import SignerSet


def signer_set(view: MarketView) -> SignerSet:
    return view.client.signer_set()


def params(view: MarketView) -> dict[str, Any]:
    return view.client.params()


def min_stake_per_gpu(view: MarketView, token: str) -> int:
    return int(view.client.min_stake_per_gpu(token))


def offer_count(view: MarketView) -> int:
    return int(view.client.offer_count())


def gpu_model(view: MarketView, model: str | bytes) -> dict[str, Any]:
    """The on-chain GPU model table's row for ``model`` (power limit, memory)."""
    return view.client.gpu_model_of(model)


def withdrawable(view: MarketView, account: str, token: str) -> int:
    return int(view.client.withdrawable(account, token))


def claimable(view: MarketView, rental_id: int) -> int:
    """Earnings of rental ``rental_id`` not yet credited to its provider's balance."""
    return int(view.client.claimable(rental_id))
