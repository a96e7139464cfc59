"""How the node's domain errors answer over HTTP: a status, ``detail`` and a ``reason`` word.

The domain errors (:mod:`oracle.node.errors`) know nothing of HTTP; :func:`install_error_handlers`
maps them onto the app.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from oracle.errors import SigningError, StorageError
from oracle.node.challenges import ChallengeError
from oracle.node.errors import (
    BadSignature,
    BatchRejected,
    BodyTooLarge,
    BrokenHashChain,
    ConflictingBatch,
    FutureBatch,
    GpuSetChanged,
    ImplausibleBatch,
    MalformedBatch,
    PaddedBatch,
    RateLimited,
    ReportConflict,
    ReportUnavailable,
    SequenceGap,
    StaleBatch,
    TimeRegression,
    UnknownRental,
    WrongAgent,
    WrongDomain,
)
from oracle.node.metering import SequenceUnavailable

# HTTP status of each refusal (the domain errors know nothing of HTTP).
BATCH_STATUS: dict[type[BatchRejected], int] = {
    BodyTooLarge: 413,
    MalformedBatch: 422,
    ImplausibleBatch: 422,
    FutureBatch: 422,
    StaleBatch: 422,
    TimeRegression: 422,
    UnknownRental: 404,
    BadSignature: 401,
    WrongAgent: 403,
    WrongDomain: 403,
    PaddedBatch: 409,
    SequenceGap: 409,
    ConflictingBatch: 409,
    BrokenHashChain: 409,
    GpuSetChanged: 409,
    RateLimited: 429,
}


# HTTP status and reason of the other domain errors a route may raise.
ERROR_STATUS: dict[type[Exception], tuple[int, str]] = {
    ReportConflict: (409, "report_conflict"),
    SequenceUnavailable: (409, "sequence_unavailable"),
    ReportUnavailable: (404, "not_found"),
    SigningError: (422, "signing_refused"),
    StorageError: (503, "storage"),
}


def _problem(status: int, detail: str, reason: str, **extra) -> JSONResponse:
    return JSONResponse({"detail": detail, "reason": reason, **extra}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BatchRejected)
    async def batch_rejected(request: Request, exc: BatchRejected) -> JSONResponse:
        if request.url.path.endswith("/batches"):
            request.app.state.node.metrics.batches_rejected.labels(exc.reason).inc()
        status = BATCH_STATUS.get(type(exc), 400)
        response = _problem(status, exc.message, exc.reason, **exc.extra)
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    for error_type, (status, reason) in ERROR_STATUS.items():
        app.add_exception_handler(error_type, _answer_with(status, reason))

    @app.exception_handler(ChallengeError)
    async def challenge_refused(request: Request, exc: ChallengeError) -> JSONResponse:
        return _problem(exc.status, str(exc), exc.reason)


def _answer_with(status: int, reason: str) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """An exception handler that answers ``status`` with the error's message and ``reason``."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return _problem(status, str(exc), reason)

    return handler
