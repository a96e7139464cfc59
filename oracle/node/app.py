"""``create_app(settings)``: the node's FastAPI application, wired from its parts."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from oracle import __version__
from oracle.errors import SigningError, StorageError
from oracle.node.api.deps import NodeRuntime
from oracle.node.api.routes import batches, health, reports
from oracle.node.attestor import Attestor, IngestLimits, SequenceUnavailable
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
    RateLimited,
    ReportConflict,
    ReportUnavailable,
    SequenceGap,
    StaleBatch,
    TimeRegression,
    UnknownRental,
    WrongAgent,
)
from oracle.node.metrics import NodeMetrics
from oracle.node.ratelimit import TokenBucketLimiter
from oracle.node.rentals import Rental, RentalRegistry, SqliteRentalRegistry
from oracle.node.settings import NodeSettings
from oracle.node.storage import GroupCommitWriter, NodeStorage

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
    SequenceGap: 409,
    ConflictingBatch: 409,
    BrokenHashChain: 409,
    GpuSetChanged: 409,
    RateLimited: 429,
}


def _problem(status: int, detail: str, reason: str, **extra) -> JSONResponse:
    return JSONResponse({"detail": detail, "reason": reason, **extra}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BatchRejected)
    async def batch_rejected(request: Request, exc: BatchRejected) -> JSONResponse:
        if request.url.path == "/v1/batches":
            request.app.state.node.metrics.batches_rejected.labels(exc.reason).inc()
        status = BATCH_STATUS.get(type(exc), 400)
        response = _problem(status, exc.message, exc.reason, **exc.extra)
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.exception_handler(ReportConflict)
    async def report_conflict(request: Request, exc: ReportConflict) -> JSONResponse:
        return _problem(409, str(exc), "report_conflict")

    @app.exception_handler(SequenceUnavailable)
    async def sequence_unavailable(request: Request, exc: SequenceUnavailable) -> JSONResponse:
        return _problem(409, str(exc), "sequence_unavailable")

    @app.exception_handler(ReportUnavailable)
    async def report_unavailable(request: Request, exc: ReportUnavailable) -> JSONResponse:
        return _problem(404, str(exc), "not_found")

    @app.exception_handler(SigningError)
    async def signing_error(request: Request, exc: SigningError) -> JSONResponse:
        return _problem(422, str(exc), "signing_refused")

    @app.exception_handler(StorageError)
    async def storage_error(request: Request, exc: StorageError) -> JSONResponse:
        return _problem(503, str(exc), "storage")


def _openapi_with_wire_schema(app: FastAPI) -> Callable[[], dict]:
    """The batch route reads its raw body (to hash and verify it exactly); document its schema."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            wire = batches.BatchWire.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(wire.pop("$defs", {}))
            components["BatchWire"] = wire
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def build_runtime(
    settings: NodeSettings,
    *,
    node_key: bytes | None = None,
    registry: RentalRegistry | None = None,
    clock: Callable[[], int] | None = None,
) -> NodeRuntime:
    storage = NodeStorage(settings.db_path)
    if registry is None:
        registry = SqliteRentalRegistry(storage)
    for rental in settings.rentals:
        registry.upsert(Rental(rental.rental_id, rental.agent, rental.gpu_count, rental.region,
                               rental.grid_intensity_g_per_kwh, rental.start_ms))
    extra = {"clock": clock} if clock is not None else {}
    attestor = Attestor(
        storage=storage,
        registry=registry,
        node_key=settings.load_node_key() if node_key is None else node_key,
        chain_id=settings.chain_id,
        market_address=settings.market_address,
        signer_set_version=settings.signer_set_version,
        limits=IngestLimits(
            max_body_bytes=settings.max_body_bytes,
            max_samples_per_batch=settings.max_samples_per_batch,
            max_clock_skew_ms=settings.max_clock_skew_ms,
            max_batch_age_ms=settings.max_batch_age_ms,
        ),
        fault=settings.fault,
        **extra,
    )
    return NodeRuntime(
        settings=settings,
        storage=storage,
        attestor=attestor,
        writer=GroupCommitWriter(storage),
        ip_limiter=TokenBucketLimiter(settings.ip_rate_per_s, settings.ip_burst),
        agent_limiter=TokenBucketLimiter(settings.agent_rate_per_s, settings.agent_burst),
        report_limiter=TokenBucketLimiter(settings.report_rate_per_s, settings.report_burst),
        metrics=NodeMetrics(),
    )


def create_app(
    settings: NodeSettings,
    *,
    node_key: bytes | None = None,
    registry: RentalRegistry | None = None,
    clock: Callable[[], int] | None = None,
) -> FastAPI:
    """The node's app. ``node_key``, ``registry`` and ``clock`` are for tests and embedding;
    by default the key comes from the settings' keystore and the registry from SQLite.

    Raises :class:`oracle.errors.ConfigError` if the node key cannot be loaded.
    """
    runtime = build_runtime(settings, node_key=node_key, registry=registry, clock=clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        runtime.close()

    app = FastAPI(
        title="gpurent attestation node",
        version=__version__,
        description="Ingests signed GPU telemetry, meters it, and signs EIP-712 usage reports "
                    "(docs/protocol.md).",
        lifespan=lifespan,
    )
    app.state.node = runtime
    _install_error_handlers(app)
    app.include_router(batches.router)
    app.include_router(reports.router)
    app.include_router(health.router)
    app.openapi = _openapi_with_wire_schema(app)
    return app
