"""Executing planned transactions through the journal and a ``TransactionSender``.

``run_intent`` opens (or resumes) the journal attempt of one intent; ``Run.step`` sends one
``TxRequest`` unless the attempt already holds it, mined or on its way:

- recorded and mined: its receipt is reused (nothing is sent);
- recorded and pending: waited for;
- recorded but unknown to the node (dropped, or never sent before the interrupt): the same signed
  bytes are sent again, same nonce, so at most one of them can ever be mined;
- recorded but its nonce taken by another transaction: it can never be mined; planned afresh.

A Ctrl-C after a transaction was recorded raises :class:`TxInterrupted`, which says what was sent
and how to check; the CLI prints it. ``GPURENT_FAULT=interrupt-before-send:<step>`` or
``interrupt-after-send:<step>`` sends this process a SIGINT at that point (fault injection for the
interrupt tests; ``*`` matches any step).
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from oracle.actions.journal import DONE, DROPPED, FAILED, MINED, REVERTED, Attempt, Journal, JournalTx
from oracle.actions.requests import TxRequest
from oracle.chain.errors import TransactionRevertedError
from oracle.chain.tx import TransactionSender, TxResult
from oracle.errors import ChainError

FAULT_ENV = "GPURENT_FAULT"


class TxInterrupted(KeyboardInterrupt):
    """Interrupted after at least one transaction was signed and recorded (maybe sent)."""

    def __init__(self, txs: Sequence[JournalTx], journal_path: str, command_hint: str = "") -> None:
        self.txs = list(txs)
        self.journal_path = journal_path
        pending = [t for t in self.txs if t.status not in (MINED, REVERTED, DROPPED)]
        sent = ", ".join(f"{t.function or t.step} {t.tx_hash} (nonce {t.nonce})" for t in (pending or self.txs))
        self.message = (f"interrupted after sending {sent}; it may still be mined. Check with "
                        f"`gpurent tx status` (journal {journal_path}); running the same command again picks it "
                        "up instead of sending it twice")
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


def _fault(point: str, step: str) -> None:
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return
    want_point, _, want_step = spec.partition(":")
    if want_point == point and want_step in ("*", step):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(10)  # the signal arrives as KeyboardInterrupt in the main thread meanwhile


def _events(contracts: Sequence[Any], receipt: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for contract in contracts:
        for name, items in contract.decode_events(receipt).items():
            out.setdefault(name, []).extend(items)
    return out


def with_events(result: TxResult, contracts: Sequence[Any]) -> TxResult:
    return TxResult(tx_hash=result.tx_hash, receipt=result.receipt, gas_used=result.gas_used,
                    effective_gas_price_wei=result.effective_gas_price_wei, block_number=result.block_number,
                    events=_events(contracts, result.receipt), replaced=result.replaced)


@dataclass
class Run:
    """One attempt of an intent: sends steps, reusing what the journal already holds."""

    sender: TransactionSender
    journal: Journal | None
    attempt: Attempt | None
    contracts: Sequence[Any] = ()
    done: dict[str, TxResult] = field(default_factory=dict)
    resumed: list[str] = field(default_factory=list)  # steps found in the journal from an earlier run

    @property
    def finished_before(self) -> bool:
        """Whether an earlier, interrupted run already got this intent's final transaction mined."""
        if self.journal is None or self.attempt is None:
            return False
        return any(t.final and t.step in self.done for t in self.journal.txs(self.attempt))

    def result(self, step: str) -> TxResult | None:
        return self.done.get(step)

    def _resolve_recorded(self) -> None:
        """Settle what an interrupted run left: mined -> reuse, pending -> wait, forgotten -> resend."""
        assert self.journal is not None and self.attempt is not None
        for t in self.journal.txs(self.attempt):
            if t.status in (REVERTED, DROPPED):
                continue
            if t.sender.lower() != self.sender.address.lower():
                continue
            try:
                result = self.sender.resume(t.base, bytes.fromhex(t.raw[2:]), t.hashes, t.nonce, t.fees,
                                            function=t.function, on_signed=self._recorder(t.step, t.final, t.label,
                                                                                           t.function))
            except TransactionRevertedError:
                self.journal.mark(self.attempt, t.step, REVERTED)  # mined, and the chain refused it
                raise
            if result is None:
                self.journal.mark(self.attempt, t.step, DROPPED)
                continue
            self.journal.mark(self.attempt, t.step, MINED, result.tx_hash)
            self.done[t.step] = with_events(result, self.contracts)
            self.resumed.append(t.step)

    def _recorder(self, step: str, final: bool, label: str, function: str) -> Callable[..., None]:
        def record(base: dict[str, Any], signed: Any, nonce: int, fees: dict[str, int]) -> None:
            if self.journal is not None and self.attempt is not None:
                self.journal.record(self.attempt, step=step, final=final, label=label, function=function,
                                    sender=self.sender.address, nonce=nonce, base=base, fees=fees,
                                    raw=bytes(signed.raw_transaction), tx_hash=signed.hash.to_0x_hex())
            _fault("interrupt-before-send", step)
        return record

    def step(self, request: TxRequest, *, final: bool = False) -> TxResult:
        """``request`` mined (sent now, or found in the journal); reverts raise."""
        key = request.step_key
        if key in self.done:
            return self.done[key]
        submitted = self.sender.submit(request.tx(), function=request.function or key,
                                       on_signed=self._recorder(key, final, request.label, request.function))
        _fault("interrupt-after-send", key)
        try:
            result = self.sender.wait(submitted, function=request.function or key,
                                      on_signed=self._recorder(key, final, request.label, request.function))
        except TransactionRevertedError:
            if self.journal is not None and self.attempt is not None:
                self.journal.mark(self.attempt, key, REVERTED)
            raise
        if self.journal is not None and self.attempt is not None:
            self.journal.mark(self.attempt, key, MINED, result.tx_hash)
        result = with_events(result, self.contracts)
        self.done[key] = result
        return result

    def steps(self, requests: Sequence[TxRequest]) -> list[TxResult]:
        """Each request in order; the last one is the intent's final transaction."""
        return [self.step(r, final=(i == len(requests) - 1)) for i, r in enumerate(requests)]


@contextmanager
def run_intent(sender: TransactionSender, journal: Journal | None, intent: str, *, action: str,
               summary: str = "", contracts: Sequence[Any] = ()) -> Iterator[Run]:
    """The journal attempt of ``intent`` as a :class:`Run`; ``done`` when the block ends, ``failed``
    when the chain refused a transaction, left ``open`` (resumable) on an interrupt or lost RPC."""
    attempt = journal.begin(intent, action=action, account=sender.address, summary=summary) if journal else None
    run = Run(sender, journal, attempt, contracts)
    try:
        if journal is not None:
            run._resolve_recorded()
        yield run
    except KeyboardInterrupt as exc:
        if isinstance(exc, TxInterrupted) or journal is None or attempt is None:
            raise
        recorded = journal.txs(attempt)
        if recorded:
            raise TxInterrupted(recorded, str(journal.path)) from None
        raise
    except TransactionRevertedError:
        if journal is not None and attempt is not None:
            journal.finish(attempt, FAILED)
        raise
    except ChainError:
        raise  # an RPC that went away: the attempt stays open, a rerun resumes it
    except Exception:
        if journal is not None and attempt is not None and not journal.txs(attempt):
            journal.finish(attempt, FAILED)  # nothing was signed: nothing to resume
        raise
    else:
        if journal is not None and attempt is not None:
            journal.finish(attempt, DONE)


def execute(sender: TransactionSender, journal: Journal | None, intent: str, planner: Callable[[], list[TxRequest]],
            *, action: str, summary: str = "", contracts: Sequence[Any] = ()) -> tuple[dict[str, TxResult], bool]:
    """Plan (from the chain as it is now) and send an action's transactions; (results by step,
    resumed) where ``resumed`` says an interrupted earlier run had already sent the final one."""
    with run_intent(sender, journal, intent, action=action, summary=summary, contracts=contracts) as run:
        if run.finished_before:
            return dict(run.done), True
        run.steps(planner())
        return dict(run.done), bool(run.resumed)
