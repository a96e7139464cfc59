"""A rental's life: open (in the offer's own payment token), start, top up, end or cancel,
finalize; then claim earnings and withdraw balances (to an address of the payee's choice)."""

from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3

from oracle.actions import views
from oracle.actions.context import ActionContext, MarketView
from oracle.actions.executor import execute
from oracle.actions.requests import TxRequest, intent_key
from oracle.actions.results import TxDone
from oracle.actions.staking import _payee_call, execute_funded, plan_funding
from oracle.actions.tokens import TokenMeta
from oracle.chain.errors import TransactionRevertedError

ZERO_HASH = b"\0" * 32


def _call(view: MarketView, function: str, *args: object, label: str) -> TxRequest:
    return TxRequest(to=view.market.address, data=view.build(function, *args), label=label, function=function)


# -- open -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RentalOpened:
    done: TxDone
    rental_id: int
    offer: views.OfferView
    budget: int
    start_deadline: int
    provider: str
    approve_tx: str | None
    workload_hash: bytes

    @property
    def token(self) -> TokenMeta:
        return self.offer.token


def plan_open_rental(view: MarketView, offer_id: int, budget: int, *, gpus: int = 1,
                     workload_hash: bytes | None = None, approve: bool = True,
                     offer_version: int | None = None) -> list[TxRequest]:
    """Approve the OFFER's payment token if needed (USDT-safe), then ``openRental``."""
    offer = views.offer(view, offer_id)
    if not offer.active:
        raise TransactionRevertedError("OfferBook_OfferInactive", {"offerId": offer_id}, function="openRental")
    version = offer.version if offer_version is None else offer_version
    return [*plan_funding(view, offer.token, budget, approve=approve),
            _call(view, "openRental", offer_id, version, gpus, budget, bytes(workload_hash or ZERO_HASH),
                  label=f"open a rental of offer {offer_id} ({gpus} GPU) with {budget} base units of "
                        f"{offer.token.label}")]


def open_rental(ctx: ActionContext, offer_id: int, budget: int, *, gpus: int = 1, workload_hash: bytes | None = None,
                approve: bool = True) -> RentalOpened:
    """Open a rental of ``offer_id`` escrowing ``budget`` of the offer's token. If ``openRental``
    fails after this call approved the market, the allowance is put back as it was."""
    offer = views.offer(ctx, offer_id)
    whash = bytes(workload_hash or ZERO_HASH)
    key = intent_key("open_rental", ctx.address, offer_id, gpus, budget, whash)
    results, resumed, approve_tx = execute_funded(
        ctx, offer.token, key,
        lambda: plan_open_rental(ctx, offer_id, budget, gpus=gpus, workload_hash=whash, approve=approve),
        action="open_rental", summary=f"open rental of offer {offer_id}, budget {budget}", contracts=[ctx.market])
    ev = results["openRental"].events["RentalOpened"][0]
    return RentalOpened(TxDone.of(results, "openRental", resumed), int(ev["rentalId"]), offer, budget,
                        int(ev["startDeadline"]), ev["provider"], approve_tx, whash)


# -- top up ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ToppedUp:
    done: TxDone
    rental_id: int
    amount: int
    budget: int
    token: TokenMeta
    approve_tx: str | None


def plan_top_up(view: MarketView, rental_id: int, amount: int, *, approve: bool = True) -> list[TxRequest]:
    token = views.rental(view, rental_id).token
    return [*plan_funding(view, token, amount, approve=approve),
            _call(view, "topUp", rental_id, amount, label=f"add {amount} base units of {token.label} to rental {rental_id}")]


def top_up(ctx: ActionContext, rental_id: int, amount: int, *, approve: bool = True) -> ToppedUp:
    token = views.rental(ctx, rental_id).token
    key = intent_key("top_up", ctx.address, rental_id, amount)
    results, resumed, approve_tx = execute_funded(ctx, token, key,
                                                  lambda: plan_top_up(ctx, rental_id, amount, approve=approve),
                                                  action="top_up", summary=f"top up rental {rental_id} by {amount}",
                                                  contracts=[ctx.market])
    budget = int(results["topUp"].events["RentalToppedUp"][0]["budget"])
    return ToppedUp(TxDone.of(results, "topUp", resumed), rental_id, amount, budget, token, approve_tx)


# -- start, end, cancel, finalize ------------------------------------------------------------------------

def _plan_one(view: MarketView, function: str, verb: str, rental_id: int) -> list[TxRequest]:
    return [_call(view, function, rental_id, label=f"{verb} rental {rental_id}")]


def _run_one(ctx: ActionContext, action: str, function: str, verb: str, rental_id: int) -> tuple[dict, TxDone]:
    """Send ``function(rental_id)`` through the journal: (receipts by step, what was done)."""
    key = intent_key(action, ctx.address, rental_id)
    results, resumed = execute(ctx.sender, ctx.journal, key, lambda: _plan_one(ctx, function, verb, rental_id),
                               action=action, summary=f"{verb} rental {rental_id}", contracts=[ctx.market])
    return results, TxDone.of(results, function, resumed)


@dataclass(frozen=True)
class RentalStarted:
    done: TxDone
    rental_id: int
    started_at: int


def plan_start_rental(view: MarketView, rental_id: int) -> list[TxRequest]:
    return _plan_one(view, "startRental", "start", rental_id)


def start_rental(ctx: ActionContext, rental_id: int) -> RentalStarted:
    _, done = _run_one(ctx, "start_rental", "startRental", "start", rental_id)
    return RentalStarted(done, rental_id, views.rental(ctx, rental_id).started_at)


@dataclass(frozen=True)
class RentalEnded:
    done: TxDone
    rental_id: int
    ended_at: int


def plan_end_rental(view: MarketView, rental_id: int) -> list[TxRequest]:
    return _plan_one(view, "endRental", "end", rental_id)


def end_rental(ctx: ActionContext, rental_id: int) -> RentalEnded:
    _, done = _run_one(ctx, "end_rental", "endRental", "end", rental_id)
    return RentalEnded(done, rental_id, views.rental(ctx, rental_id).ended_at)


@dataclass(frozen=True)
class RentalCancelled:
    done: TxDone
    rental_id: int
    refund: int
    token: TokenMeta


def plan_cancel_rental(view: MarketView, rental_id: int) -> list[TxRequest]:
    return _plan_one(view, "cancelRental", "cancel", rental_id)


def cancel_rental(ctx: ActionContext, rental_id: int) -> RentalCancelled:
    results, done = _run_one(ctx, "cancel_rental", "cancelRental", "cancel", rental_id)
    refund = int(results["cancelRental"].events["RentalCancelled"][0]["refund"])
    return RentalCancelled(done, rental_id, refund, views.rental(ctx, rental_id).token)


@dataclass(frozen=True)
class RentalFinalized:
    done: TxDone
    rental_id: int
    paid: int
    fee: int
    refund: int
    abandoned: bool
    token: TokenMeta


def plan_finalize_rental(view: MarketView, rental_id: int) -> list[TxRequest]:
    return _plan_one(view, "finalizeRental", "finalize", rental_id)


def finalize_rental(ctx: ActionContext, rental_id: int) -> RentalFinalized:
    """``finalizeRental`` for either side: the renter's refund, the fee and reputation settle."""
    results, done = _run_one(ctx, "finalize_rental", "finalizeRental", "finalize", rental_id)
    ev = results["finalizeRental"].events["RentalFinalized"][0]
    return RentalFinalized(done, rental_id, int(ev["paid"]), int(ev["fee"]),
                           int(ev["refund"]), bool(ev["abandoned"]), views.rental(ctx, rental_id).token)


# -- claim, withdraw --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Claimed:
    done: TxDone
    rental_ids: list[int]
    amount: int


def plan_claim(view: MarketView, rental_ids: list[int]) -> list[TxRequest]:
    return [_call(view, "claim", [int(r) for r in rental_ids], label=f"claim earnings of rentals {rental_ids}")]


def claim(ctx: ActionContext, rental_ids: list[int]) -> Claimed:
    """Credit each rental's provider with its accrued earnings (anyone may)."""
    key = intent_key("claim", ctx.address, sorted(rental_ids))
    results, resumed = execute(ctx.sender, ctx.journal, key, lambda: plan_claim(ctx, rental_ids),
                               action="claim", summary=f"claim {rental_ids}", contracts=[ctx.market])
    amount = sum(int(ev["amount"]) for ev in results["claim"].events.get("EarningsClaimed", []))
    return Claimed(TxDone.of(results, "claim", resumed), list(rental_ids), amount)


@dataclass(frozen=True)
class Withdrawn:
    done: TxDone
    token: TokenMeta
    amount: int
    to: str
    claimed_rentals: list[int]
    claimed: int


def plan_withdraw(view: MarketView, token: str | None = None, *, to: str | None = None,
                  claim_first: bool = True) -> list[TxRequest]:
    """Claim the account's accrued provider earnings (if any), then withdraw its whole balance of
    ``token`` (default: the payment token) to itself or to ``to``."""
    token = Web3.to_checksum_address(token or view.require_deployment().payment_token)
    requests = []
    if claim_first:
        ids = views.unclaimed_rentals(view, view.account)
        if ids:
            requests += plan_claim(view, ids)
    requests.append(_payee_call(view, "withdraw", "withdrawTo", to, token, label=f"withdraw {view.token(token).label}"))
    return requests


def withdraw(ctx: ActionContext, token: str | None = None, *, to: str | None = None) -> Withdrawn:
    token = Web3.to_checksum_address(token or ctx.require_deployment().payment_token)
    key = intent_key("withdraw", ctx.address, token, to)
    results, resumed = execute(ctx.sender, ctx.journal, key, lambda: plan_withdraw(ctx, token, to=to),
                               action="withdraw", summary=f"withdraw {token}", contracts=[ctx.market])
    main = "withdrawTo" if "withdrawTo" in results else "withdraw"
    amount = sum(int(ev["amount"]) for ev in results[main].events.get("Withdrawn", []))
    claimed_ids: list[int] = []
    claimed = 0
    if "claim" in results:
        events = results["claim"].events.get("EarningsClaimed", [])
        claimed_ids = sorted({int(ev["rentalId"]) for ev in events})
        claimed = sum(int(ev["amount"]) for ev in events)
    return Withdrawn(TxDone.of(results, main, resumed), ctx.token(token), amount,
                     Web3.to_checksum_address(to) if to else ctx.address, claimed_ids, claimed)
