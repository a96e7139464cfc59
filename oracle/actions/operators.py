"""An oracle operator in the OperatorRegistry: bond, unbond (request, complete), withdraw earnings."""

from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3

from oracle.actions.context import ActionContext, MarketView
from oracle.actions.executor import execute
from oracle.actions.requests import TxRequest, intent_key
from oracle.actions.results import TxDone
from oracle.actions.staking import execute_funded, plan_funding
from oracle.actions.tokens import TokenMeta
from oracle.chain.operators import OperatorClient
from oracle.errors import ChainError, ConfigError


def registry(view: MarketView) -> OperatorClient:
    d = view.require_deployment()
    if not d.operator_registry:
        raise ChainError(f"the deployment on chain {view.chain_id} has no OperatorRegistry; "
                         "deploy one with `gpurent deploy` (this version deploys it with the market)")
    return OperatorClient(view.sender, d.operator_registry)


def _call(ops: OperatorClient, function: str, *args: object, label: str) -> TxRequest:
    data = ops.registry.build(function, *args)["data"]
    return TxRequest(to=ops.registry.address, data=data, label=label, function=function)


def _payee_call(view: MarketView, ops: OperatorClient, plain: str, to_variant: str, to: str | None, *args: object,
                label: str) -> TxRequest:
    """``plain(*args)`` paying the caller, or ``to_variant(*args, to)`` paying ``to``."""
    if to is None or to.lower() == view.account.lower():
        return _call(ops, plain, *args, label=label)
    if not ops.registry.has_function(to_variant):
        raise ConfigError(f"this OperatorRegistry has no {to_variant}: it can only pay the caller's own address; "
                          "leave out --to")
    return _call(ops, to_variant, *args, Web3.to_checksum_address(to), label=f"{label} to {to}")


def _execute(ctx: ActionContext, action: str, key_parts: tuple, planner, main: str | None = None):
    """Run the plan; (results by step, the TxDone of ``main``, default the last step)."""
    ops = registry(ctx)
    key = intent_key(action, ctx.address, *key_parts)
    results, resumed = execute(ctx.sender, ctx.journal, key, planner, action=action, summary=action,
                               contracts=[ops.registry])
    return results, TxDone.of(results, main or list(results)[-1], resumed)


@dataclass(frozen=True)
class Bonded:
    done: TxDone
    amount: int
    active: int
    eligible: bool
    token: TokenMeta


def plan_bond(view: MarketView, amount: int, token: str | None = None) -> list[TxRequest]:
    ops = registry(view)
    meta = view.token(token or view.require_deployment().payment_token)
    return [*plan_funding(view, meta, amount, spender=ops.address, what="the operator registry"),
            _call(ops, "bond", meta.address, amount, label=f"bond {amount} base units of {meta.label}")]


def bond(ctx: ActionContext, amount: int, token: str | None = None) -> Bonded:
    meta = ctx.token(token or ctx.require_deployment().payment_token)
    ops = registry(ctx)
    key = intent_key("operator_bond", ctx.address, meta.address, amount)
    results, resumed, _ = execute_funded(ctx, meta, key, lambda: plan_bond(ctx, amount, meta.address),
                                         action="operator_bond", summary="operator_bond", contracts=[ops.registry],
                                         spender=ops.address)
    done = TxDone.of(results, "bond", resumed)
    return Bonded(done, amount, int(ops.bond_of(ctx.address)["active"]), ops.is_bonded(ctx.address), meta)


@dataclass(frozen=True)
class UnbondRequested:
    done: TxDone
    amount: int
    unbonding: int
    release_at: int


def plan_request_unbond(view: MarketView, amount: int) -> list[TxRequest]:
    return [_call(registry(view), "requestUnbond", amount, label=f"start unbonding {amount} base units")]


def request_unbond(ctx: ActionContext, amount: int) -> UnbondRequested:
    results, done = _execute(ctx, "operator_unbond", (amount,), lambda: plan_request_unbond(ctx, amount), "requestUnbond")
    ev = results["requestUnbond"].events["UnbondRequested"][0]
    return UnbondRequested(done, amount, int(ev["unbondingBond"]), int(ev["releaseAt"]))


@dataclass(frozen=True)
class UnbondCompleted:
    done: TxDone
    amount: int
    to: str


def plan_complete_unbond(view: MarketView, to: str | None = None) -> list[TxRequest]:
    return [_payee_call(view, registry(view), "completeUnbond", "completeUnbondTo", to,
                        label="take back the unbonded bond")]


def complete_unbond(ctx: ActionContext, to: str | None = None) -> UnbondCompleted:
    results, done = _execute(ctx, "operator_complete_unbond", (to,), lambda: plan_complete_unbond(ctx, to))
    events = results[list(results)[-1]].events.get("Unbonded", [])
    return UnbondCompleted(done, int(events[0]["amount"]) if events else 0,
                           Web3.to_checksum_address(to) if to else ctx.address)


@dataclass(frozen=True)
class OperatorWithdrawn:
    done: TxDone
    token: TokenMeta
    amount: int
    earlier_txs: list[str]
    to: str


def plan_operator_withdraw(view: MarketView, *, sync: bool = True, token: str | None = None,
                           to: str | None = None) -> list[TxRequest]:
    """Pull the market's fees into the registry (``sync``), claim accrued rebates, withdraw."""
    ops = registry(view)
    token = token or view.require_deployment().payment_token
    requests = []
    if sync and ops.pending_fees(token) > 0:
        requests.append(_call(ops, "sync", token, label="sync the operators' fee share"))
    rebate_token = str(ops.params()["rebateToken"]).lower()
    if (int(ops.view("bondOf", view.account)["rebateReports"]) > 0 and rebate_token == token.lower()
            and ops.rebate_reserve(token) > 0):
        requests.append(_call(ops, "claimRebates", label="claim settlement rebates"))
    if not requests and ops.balance_of(token, view.account) == 0:
        raise ChainError(f"{view.account} has nothing to withdraw from the OperatorRegistry")
    requests.append(_payee_call(view, ops, "withdraw", "withdrawTo", to, token, label=f"withdraw {view.token(token).label}"))
    return requests


def operator_withdraw(ctx: ActionContext, *, sync: bool = True, to: str | None = None) -> OperatorWithdrawn:
    token = ctx.require_deployment().payment_token
    results, done = _execute(ctx, "operator_withdraw", (token, to),
                             lambda: plan_operator_withdraw(ctx, sync=sync, to=to))
    main = list(results)[-1]
    amount = sum(int(ev["amount"]) for ev in results[main].events.get("Withdrawn", []))
    return OperatorWithdrawn(done, ctx.token(token), amount, [r.tx_hash for step, r in results.items() if step != main],
                             Web3.to_checksum_address(to) if to else ctx.address)
