"""RPC calls that survive a flaky endpoint: which failures are transient, and retrying them
with exponential backoff and jitter (``retry_rpc``). Re-sending the same signed bytes is idempotent."""

from __future__ import annotations

import logging
import random
import time
from typing import Callable, TypeVar

import requests
from web3 import Web3
from web3.exceptions import ContractLogicError, TimeExhausted, ProviderConnectionError, TooManyRequests, Web3RPCError

from oracle.chain.errors import RpcUnavailableError, TransactionRevertedError
from oracle.redact import redact

log = logging.getLogger("oracle.chain.tx")
T = TypeVar("T")

_TRANSIENT_MESSAGES = (
    "header not found",
    "timeout",
    "timed out",
    "too many requests",
    "rate limit",
    "service unavailable",
    "bad gateway",
    "gateway",
    "connection",
    "internal error",
    "try again",
    "temporarily",
)


def is_transient(exc: BaseException) -> bool:
    """Whether an RPC failure is worth retrying as is (never a revert or a rejected tx)."""
    if isinstance(exc, (ContractLogicError, TransactionRevertedError)):
        return False
    if isinstance(
        exc,
        (
            requests.ConnectionError,
            requests.Timeout,
            ConnectionError,
            TimeoutError,
            ProviderConnectionError,
            TooManyRequests,
        ),
    ):
        return True
    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        return status == 429 or status >= 500
    if isinstance(exc, Web3RPCError):
        msg = str(exc.message if hasattr(exc, "message") else exc).lower()
        return any(m in msg for m in _TRANSIENT_MESSAGES)
    return False


def _rpc_message(exc: BaseException) -> str:
    if isinstance(exc, Web3RPCError):
        resp = getattr(exc, "rpc_response", None) or {}
        err = resp.get("error") if isinstance(resp, dict) else None
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"]).lower()
        return str(getattr(exc, "message", exc)).lower()
    if isinstance(exc, ValueError) and exc.args and isinstance(exc.args[0], dict):
        return str(exc.args[0].get("message", "")).lower()
    return str(exc).lower()


def retry_rpc(
    fn: Callable[[], T],
    what: str = "rpc",
    *,
    retries: int = 5,
    backoff_base_s: float = 0.2,
    backoff_max_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[], None] | None = None,
) -> T:
    """Call ``fn``, retrying transient RPC failures with exponential backoff and jitter.

    After ``retries`` retries raises ``RpcUnavailableError``; non-transient errors pass through.
    """
    for attempt in range(retries + 1):
        try:
            return fn()
        except Exception as exc:  # classified below
            if not is_transient(exc):
                raise
            if attempt == retries:
                raise RpcUnavailableError(f"{what}: RPC kept failing: {redact(str(exc))}") from exc
            delay = min(backoff_max_s, backoff_base_s * 2**attempt) * (0.5 + random.random() / 2)
            log.warning("%s: transient RPC error (%s); retry %d in %.2fs", what, redact(str(exc)), attempt + 1, delay)
            if on_retry is not None:
                on_retry()
            sleep(delay)
    raise AssertionError("unreachable")


def wait_for_block(w3: Web3, number: int, timeout_s: float = 30.0) -> None:
    """Block until the chain head reaches ``number``."""
    deadline = time.monotonic() + timeout_s
    while w3.eth.block_number < number:
        if time.monotonic() > deadline:
            raise TimeExhausted(f"block {number} not reached in {timeout_s}s")
        time.sleep(0.05)
