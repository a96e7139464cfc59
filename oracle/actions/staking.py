"""A provider's stake: stake, request an unstake, complete it (to an address of its choice)."""

from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3

from oracle.actions import views
from oracle.actions.context import ActionContext, MarketView
from oracle.actions.executor import execute
from oracle.actions.requests import TxRequest, intent_key
from oracle.actions.results import TxDone
from oracle.actions.tokens import TokenMeta, allowance, balance_of, plan_allowance
from oracle.chain.errors import TransactionRevertedError
from oracle.errors import ConfigError


def plan_funding(view: MarketView, token: TokenMeta, amount: int, *, approve: bool = True,
                 spender: str | None = None, what: str = "the market") -> list[TxRequest]:
    """The approvals that let ``spender`` (default: the market) pull ``amount`` of ``token`` from
    ``view.account``; refuses early (nothing sent) when the balance is short, or the allowance is
    and ``approve`` is off."""
    spender = spender or view.require_deployment().market
    if not approve:
        current = allowance(view.w3, token.address, view.account, spender)
        if current < amount:
            raise TransactionRevertedError("ERC20InsufficientAllowance",
                                           {"spender": spender, "allowance": current, "needed": amount},
                                           function="approve")
        return []
    balance = balance_of(view.w3, token.address, view.account)
    if balance < amount:
        raise TransactionRevertedError("ERC20InsufficientBalance",
                                       {"sender": view.account, "balance": balance, "needed": amount},
                                       function="approve")
    return plan_allowance(view.w3, token, view.account, spender, amount, what=what)


def execute_funded(ctx: ActionContext, token: TokenMeta, key: str, planner, *, action: str, summary: str,
                   contracts: list, spender: str | None = None) -> tuple[dict, bool, str | None]:
    """Run a plan whose first steps (:func:`plan_funding`) approve ``spender`` (default: the market)
    for ``token``. If a step reverts after the approval landed, the allowance is put back as it
    was. Returns (results by step, resumed, the approval's transaction hash or None)."""
    spender = spender or ctx.require_deployment().market
    before = allowance(ctx.w3, token.address, ctx.address, spender)
    try:
        results, resumed = execute(ctx.sender, ctx.journal, key, planner, action=action, summary=summary,
                                   contracts=contracts)
    except TransactionRevertedError:
        restore_allowance(ctx, token, spender, before)
        raise
    approval = results.get("approve")
    return results, resumed, approval.tx_hash if approval is not None else None


def restore_allowance(ctx: ActionContext, token: TokenMeta, spender: str, amount: int) -> None:
    """Put ``spender``'s allowance back to ``amount`` (best effort: a token that refuses keeps the
    raised allowance, which a later approval handles anyway)."""
    if allowance(ctx.w3, token.address, ctx.address, spender) == amount:
        return
    key = intent_key("restore_allowance", ctx.address, token.address, spender, amount)
    try:
        execute(ctx.sender, ctx.journal, key,
                lambda: plan_allowance(ctx.w3, token, ctx.address, spender, amount, exact=True),
                action="restore_allowance", summary=f"allowance back to {amount}")
    except TransactionRevertedError:
        pass


def _call(view: MarketView, function: str, *args: object, label: str) -> TxRequest:
    return TxRequest(to=view.market.address, data=view.build(function, *args), label=label, function=function)


# -- stake ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Staked:
    done: TxDone
    staked: int
    active_stake: int
    token: TokenMeta
    approve_tx: str | None


def plan_stake(view: MarketView, amount: int, *, approve: bool = True) -> list[TxRequest]:
    token = view.stake_token
    return [*plan_funding(view, token, amount, approve=approve),
            _call(view, "stake", token.address, amount, label=f"stake {amount} base units of {token.label}")]


def stake(ctx: ActionContext, amount: int, *, approve: bool = True) -> Staked:
    token = ctx.stake_token
    key = intent_key("stake", ctx.address, token.address, amount)
    results, resumed, approve_tx = execute_funded(ctx, token, key, lambda: plan_stake(ctx, amount, approve=approve),
                                                  action="stake", summary=f"stake {amount} of {token.label}",
                                                  contracts=[ctx.market])
    active = views.stake(ctx, ctx.address).active
    return Staked(TxDone.of(results, "stake", resumed), amount, active, token, approve_tx)


# -- unstake ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UnstakeRequested:
    done: TxDone
    amount: int
    unbonding: int
    release_at: int


def plan_request_unstake(view: MarketView, amount: int) -> list[TxRequest]:
    return [_call(view, "requestUnstake", amount, label=f"start unbonding {amount} base units of stake")]


def request_unstake(ctx: ActionContext, amount: int) -> UnstakeRequested:
    key = intent_key("request_unstake", ctx.address, amount)
    results, resumed = execute(ctx.sender, ctx.journal, key, lambda: plan_request_unstake(ctx, amount),
                               action="request_unstake", summary=f"unstake {amount}", contracts=[ctx.market])
    ev = results["requestUnstake"].events.get("UnstakeRequested", [{}])[0]
    return UnstakeRequested(TxDone.of(results, "requestUnstake", resumed), amount,
                            int(ev.get("unbondingStake", amount)), int(ev.get("releaseAt", 0)))


@dataclass(frozen=True)
class UnstakeCompleted:
    done: TxDone
    returned: int
    to: str


def _payee_call(view: MarketView, plain: str, to_variant: str, to: str | None, *args: object,
                label: str) -> TxRequest:
    """``plain(*args)`` paying the caller, or ``to_variant(*args, to)`` paying ``to``."""
    if to is None or to.lower() == view.account.lower():
        return _call(view, plain, *args, label=label)
    if not view.has_function(to_variant):
        raise ConfigError(f"this market has no {to_variant}: it can only pay the caller's own address "
                          "(deployed before withdraw-to); leave out --to")
    return _call(view, to_variant, *args, Web3.to_checksum_address(to), label=f"{label} to {to}")


def plan_complete_unstake(view: MarketView, to: str | None = None) -> list[TxRequest]:
    return [_payee_call(view, "completeUnstake", "completeUnstakeTo", to, label="take back unbonded stake")]


def complete_unstake(ctx: ActionContext, to: str | None = None) -> UnstakeCompleted:
    key = intent_key("complete_unstake", ctx.address, to)
    results, resumed = execute(ctx.sender, ctx.journal, key, lambda: plan_complete_unstake(ctx, to),
                               action="complete_unstake", summary="complete unstake", contracts=[ctx.market])
    main = next(iter(results.values()))
    events = main.events.get("Unstaked", [])
    step = next(iter(results))
    return UnstakeCompleted(TxDone.of(results, step, resumed), int(events[0]["amount"]) if events else 0,
                            Web3.to_checksum_address(to) if to else ctx.address)
