"""Governance changes through the deployment's timelock: schedule (the proposer's key), then
execute once the delay has passed (anyone). A deployment without a timelock (tests, old ones)
calls the market directly with the governance key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oracle.actions.context import ActionContext, MarketView
from oracle.actions.executor import execute
from oracle.actions.requests import TxRequest, intent_key
from oracle.actions.results import TxDone
from oracle.chain.governance import ZERO32, Operation, TimelockGovernance
from oracle.errors import ChainError, ConfigError


@dataclass(frozen=True)
class GovernanceDone:
    function: str
    via: str  # "direct" | "timelock"
    done: TxDone | None  # the transaction sent now (None: scheduled earlier, nothing to send)
    operation_id: str = ""
    state: str = ""  # timelock: unset | waiting | ready | done
    ready_at: int = 0
    schedule_tx: str | None = None
    timelock: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"function": self.function, "via": self.via}
        if self.via == "timelock":
            out.update({"timelock": self.timelock, "operation_id": self.operation_id, "ready_at": self.ready_at,
                        "state": self.state})
            if self.schedule_tx:
                out["schedule_tx"] = self.schedule_tx
        if self.done is not None:
            out.update(self.done.tx_out())
        return out


def timelock(view: MarketView) -> TimelockGovernance | None:
    d = view.require_deployment()
    if not d.timelock:
        return None
    return TimelockGovernance(view.sender, d.timelock, d.market, view.market_abi)


def operation(view: MarketView, function: str, *args: Any) -> Operation:
    gov = timelock(view)
    if gov is None:
        raise ConfigError("this deployment has no governance timelock")
    return gov.operation(function, *args)


def plan_schedule(view: MarketView, function: str, *args: Any) -> list[TxRequest]:
    """``schedule`` of the timelock operation calling ``market.function(*args)`` (nothing if it is
    scheduled already); without a timelock, the market call itself."""
    gov = timelock(view)
    if gov is None:
        return [TxRequest(to=view.market.address, data=view.build(function, *args), label=function, function=function)]
    op = gov.operation(function, *args)
    if gov.state(op) != "unset":
        return []
    data = gov.timelock.build("schedule", op.target, 0, op.data, ZERO32, op.salt, gov.min_delay())["data"]
    return [TxRequest(to=gov.timelock.address, data=data, label=f"schedule {function} ({op.id_hex})",
                      function="schedule")]


def plan_execute(view: MarketView, function: str, *args: Any) -> list[TxRequest]:
    gov = timelock(view)
    if gov is None:
        return [TxRequest(to=view.market.address, data=view.build(function, *args), label=function, function=function)]
    op = gov.operation(function, *args)
    state = gov.state(op)
    if state != "ready":
        raise ChainError(f"timelock operation {op.id_hex} ({function}) is {state}, not ready"
                         + (f"; ready at unix time {gov.ready_at(op)}" if state == "waiting" else ""))
    data = gov.timelock.build("execute", op.target, 0, op.data, ZERO32, op.salt)["data"]
    return [TxRequest(to=gov.timelock.address, data=data, label=f"execute {function} ({op.id_hex})",
                      function="execute")]


def _run(ctx: ActionContext, what: str, function: str, args: tuple, planner: Any) -> TxDone | None:
    key = intent_key(f"governance_{what}", ctx.address, function, list(args))
    contracts = [ctx.market] + ([timelock(ctx).timelock] if timelock(ctx) else [])
    results, resumed = execute(ctx.sender, ctx.journal, key, planner, action=f"governance {what}",
                               summary=f"{what} {function}", contracts=contracts)
    if not results:
        return None
    step = list(results)[-1]
    return TxDone.of(results, step, resumed)


def schedule(ctx: ActionContext, function: str, *args: Any) -> GovernanceDone:
    done = _run(ctx, "schedule", function, args, lambda: plan_schedule(ctx, function, *args))
    gov = timelock(ctx)
    if gov is None:
        return GovernanceDone(function, "direct", done)
    op = gov.operation(function, *args)
    return GovernanceDone(function, "timelock", done, op.id_hex, gov.state(op), gov.ready_at(op),
                          done.tx_hash if done is not None else None, gov.timelock.address)


def execute_change(ctx: ActionContext, function: str, *args: Any) -> GovernanceDone:
    done = _run(ctx, "execute", function, args, lambda: plan_execute(ctx, function, *args))
    gov = timelock(ctx)
    if gov is None:
        return GovernanceDone(function, "direct", done)
    op = gov.operation(function, *args)
    return GovernanceDone(function, "timelock", done, op.id_hex, gov.state(op), gov.ready_at(op),
                          timelock=gov.timelock.address)


def warp_past_delay(ctx: ActionContext) -> None:
    """On a local anvil only: move the chain clock past the timelock's delay."""
    from oracle.localchain import _rpc

    gov = timelock(ctx)
    if gov is None:
        return
    if not ctx.is_anvil:
        raise ConfigError("--warp moves the chain clock: only on a local anvil")
    _rpc(ctx.rpc_url, "evm_increaseTime", [gov.min_delay() + 1])
    _rpc(ctx.rpc_url, "evm_mine", [])
