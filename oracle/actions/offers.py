"""A provider's offers: create, update, withdraw."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from oracle.actions import views
from oracle.actions.context import ActionContext, MarketView
from oracle.actions.executor import execute
from oracle.actions.requests import TxRequest, intent_key
from oracle.actions.results import TxDone
from oracle.chain.client import OFFER_TERMS_FIELDS, OfferTerms, struct_tuple


def terms_tuple(terms: OfferTerms | Mapping[str, Any] | tuple) -> tuple:
    """``OfferTerms`` in ABI order from the dataclass, a mapping or a tuple already in order."""
    if isinstance(terms, OfferTerms):
        return terms.as_tuple()
    if isinstance(terms, tuple):
        return terms
    return struct_tuple(terms, OFFER_TERMS_FIELDS)


@dataclass(frozen=True)
class OfferDone:
    done: TxDone
    offer: views.OfferView


def plan_create_offer(view: MarketView, terms: OfferTerms | Mapping[str, Any] | tuple) -> list[TxRequest]:
    return [TxRequest(to=view.market.address, data=view.build("createOffer", terms_tuple(terms)),
                      label="list an offer", function="createOffer")]


def create_offer(ctx: ActionContext, terms: OfferTerms | Mapping[str, Any] | tuple) -> OfferDone:
    t = terms_tuple(terms)
    key = intent_key("create_offer", ctx.address, list(t))
    results, resumed = execute(ctx.sender, ctx.journal, key, lambda: plan_create_offer(ctx, t),
                               action="create_offer", summary="create offer", contracts=[ctx.market])
    offer_id = int(results["createOffer"].events["OfferCreated"][0]["offerId"])
    return OfferDone(TxDone.of(results, "createOffer", resumed), views.offer(ctx, offer_id))


def plan_update_offer(view: MarketView, offer_id: int, terms: OfferTerms | Mapping[str, Any] | tuple) -> list[TxRequest]:
    return [TxRequest(to=view.market.address, data=view.build("updateOffer", offer_id, terms_tuple(terms)),
                      label=f"update offer {offer_id}", function="updateOffer")]


def update_offer(ctx: ActionContext, offer_id: int, terms: OfferTerms | Mapping[str, Any] | tuple) -> OfferDone:
    t = terms_tuple(terms)
    key = intent_key("update_offer", ctx.address, offer_id, list(t))
    results, resumed = execute(ctx.sender, ctx.journal, key, lambda: plan_update_offer(ctx, offer_id, t),
                               action="update_offer", summary=f"update offer {offer_id}", contracts=[ctx.market])
    return OfferDone(TxDone.of(results, "updateOffer", resumed), views.offer(ctx, offer_id))


def plan_withdraw_offer(view: MarketView, offer_id: int) -> list[TxRequest]:
    return [TxRequest(to=view.market.address, data=view.build("withdrawOffer", offer_id),
                      label=f"withdraw offer {offer_id}", function="withdrawOffer")]


def withdraw_offer(ctx: ActionContext, offer_id: int) -> TxDone:
    key = intent_key("withdraw_offer", ctx.address, offer_id)
    results, resumed = execute(ctx.sender, ctx.journal, key, lambda: plan_withdraw_offer(ctx, offer_id),
                               action="withdraw_offer", summary=f"withdraw offer {offer_id}", contracts=[ctx.market])
    return TxDone.of(results, "withdrawOffer", resumed)
