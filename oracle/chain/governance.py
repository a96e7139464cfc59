"""Governance through the deployment's timelock (OpenZeppelin ``TimelockController``).

A deployment made by ``gpurent deploy`` or ``scripts/deploy.py`` gives the market's
``DEFAULT_ADMIN_ROLE`` and ``GOVERNANCE_ROLE`` to a ``MarketTimelock`` and the deployer none.
Every governance call (signer set, parameters, GPU models, allowlists) is therefore *scheduled*
by a proposer (a Safe multisig in production, the deployer's key on a local chain) and
*executed* by anyone once the timelock's ``minDelay`` has passed, so providers and renters see
a change before it applies and can leave first.

:class:`TimelockGovernance` builds the operation for a market call (target, calldata, salt:
the same inputs always name the same operation id), schedules it, reports its state and
executes it when ready.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from web3 import Web3

from oracle.chain.artifacts import load_abi
from oracle.chain.contract import BoundContract
from oracle.chain.tx import TransactionSender, TxResult
from oracle.errors import ChainError

ZERO32 = b"\0" * 32
# TimelockController.OperationState
OPERATION_STATES = ("unset", "waiting", "ready", "done")


@dataclass(frozen=True)
class Operation:
    """One timelocked market call."""

    function: str
    target: str
    data: bytes
    salt: bytes
    operation_id: bytes

    @property
    def id_hex(self) -> str:
        return "0x" + self.operation_id.hex()


class TimelockGovernance:
    """Schedule and execute market governance calls through ``timelock``."""

    def __init__(self, sender: TransactionSender, timelock: str, market: str,
                 market_abi: Sequence[dict[str, Any]] | None = None) -> None:
        self.sender = sender
        self.market_abi = list(market_abi) if market_abi is not None else load_abi("GpuRentMarket")
        self.market = BoundContract(sender, market, self.market_abi)
        self.timelock = BoundContract(sender, timelock, load_abi("MarketTimelock"), extra_error_abis=[self.market_abi])

    def min_delay(self) -> int:
        return int(self.timelock.call("getMinDelay"))

    def operation(self, function: str, *args: Any, salt: bytes = ZERO32) -> Operation:
        """The operation calling ``market.function(*args)`` (same inputs, same id)."""
        tx = self.market.build(function, *args)
        data = bytes(Web3.to_bytes(hexstr=tx["data"]) if isinstance(tx["data"], str) else tx["data"])
        op_id = bytes(self.timelock.call("hashOperation", self.market.address, 0, data, ZERO32, salt))
        return Operation(function, self.market.address, data, salt, op_id)

    def state(self, op: Operation) -> str:
        return OPERATION_STATES[int(self.timelock.call("getOperationState", op.operation_id))]

    def ready_at(self, op: Operation) -> int:
        """Unix time from which ``op`` can execute (0 unset, 1 done)."""
        return int(self.timelock.call("getTimestamp", op.operation_id))

    def schedule(self, op: Operation, delay_s: int | None = None) -> TxResult:
        """Schedule ``op`` (the sender needs PROPOSER_ROLE) after ``delay_s`` (default: minDelay)."""
        delay = self.min_delay() if delay_s is None else delay_s
        return self.timelock.transact("schedule", op.target, 0, op.data, ZERO32, op.salt, delay)

    def execute(self, op: Operation) -> TxResult:
        """Execute a ready ``op`` (anyone may: the executor role is open)."""
        state = self.state(op)
        if state != "ready":
            raise ChainError(f"timelock operation {op.id_hex} ({op.function}) is {state}, not ready"
                             + (f"; ready at unix time {self.ready_at(op)}" if state == "waiting" else ""))
        return self.timelock.transact("execute", op.target, 0, op.data, ZERO32, op.salt)
