"""An oracle operator in the OperatorRegistry: bond, unbond (request, complete), withdraw earnings."""

from __future__ import annotations

from dataclasses import dataclass

from oracle.actions.context import ActionContext, MarketView
from oracle.actions.executor import execute
from oracle.actions.requests import TxRequest, intent_key
from oracle.actions.results import TxDone
from oracle.actions.staking import plan_funding
from oracle.actions.tokens import TokenMeta
from oracle.chain.operators import OperatorClient
from oracle.errors import ChainError


def registry(view: MarketView) -> OperatorClient:
    d = view.require_deployment()
    if not d.operator_registry:
        raise ChainError(f"the deployment on chain {view.chain_id} has no OperatorRegistry; "
                         "deploy one with `gpurent deploy` (this version deploys it with the market)")
    return OperatorClient(view.sender, d.operator_registry)


def _call(ops: OperatorClient, function: str, *args: object, label: str) -> TxRequest:
    data = ops.registry.build(function, *args)["data"]
    return TxRequest(to=ops.registry.address, data=data, label=label, function=function)


def _execute(ctx: ActionContext, action: str, key_parts: tuple, planner, main: str):
    ops = registry(ctx)
    key = intent_key(action, ctx.address, *key_parts)
    results, resumed = execute(ctx.sender, ctx.journal, key, planner, action=action, summary=action,
                               contracts=[ops.registry])
    return results, TxDone.of(results, main, resumed)


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
    _, done = _execute(ctx, "operator_bond", (meta.address, amount), lambda: plan_bond(ctx, amount, meta.address), "bond")
    ops = registry(ctx)
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


def plan_complete_unbond(view: MarketView) -> list[TxRequest]:
    return [_call(registry(view), "completeUnbond", label="take back the unbonded bond")]


def complete_unbond(ctx: ActionContext) -> UnbondCompleted:
    results, done = _execute(ctx, "operator_complete_unbond", (), lambda: plan_complete_unbond(ctx), "completeUnbond")
    return UnbondCompleted(done, int(results["completeUnbond"].events["Unbonded"][0]["amount"]))


@dataclass(frozen=True)
class OperatorWithdrawn:
    done: TxDone
    token: TokenMeta
    amount: int
    earlier_txs: list[str]


def plan_operator_withdraw(view: MarketView, *, sync: bool = True, token: str | None = None) -> list[TxRequest]:
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
    requests.append(_call(ops, "withdraw", token, label=f"withdraw {view.token(token).label}"))
    return requests


def operator_withdraw(ctx: ActionContext, *, sync: bool = True) -> OperatorWithdrawn:
    token = ctx.require_deployment().payment_token
    results, done = _execute(ctx, "operator_withdraw", (token,), lambda: plan_operator_withdraw(ctx, sync=sync),
                             "withdraw")
    amount = int(results["withdraw"].events["Withdrawn"][0]["amount"])
    return OperatorWithdrawn(done, ctx.token(token), amount,
                             [r.tx_hash for step, r in results.items() if step != "withdraw"])
