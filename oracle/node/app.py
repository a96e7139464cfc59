"""``create_app(settings)``: the node's FastAPI application, wired from its parts.

With ``settings.rpc_url`` the app also runs the node's chain side
(:class:`~oracle.node.node_chain.NodeChain`) for the
lifetime of the server: an event follower that feeds the rental registry from ``RentalStarted``,
and a settlement loop that aggregates signatures from this node and its peers and submits
``settleBatch``/``settle``/``slash`` with the node key. Without it, the node meters the rentals
listed in its settings and nothing else changes.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Callable

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from oracle import __version__
from oracle.node.api.deps import NodeRuntime
from oracle.node.api.errors import BATCH_STATUS, ERROR_STATUS, install_error_handlers
from oracle.node.api.guard import BodyGuard
from oracle.node.api.routes import batches, challenges, health, reports
from oracle.node.archive import Retention
from oracle.node.attestor import Attestor, IngestLimits
from oracle.node.challenges import ChallengeLoop, MeteringLedger, build_challenges
from oracle.node.metrics import NodeMetrics
from oracle.node.node_chain import NodeChain, check_chain, check_chain_now
from oracle.node.peerauth import PeerVerifier
from oracle.node.ratelimit import TokenBucketLimiter
from oracle.node.rentals import Rental, RentalRegistry, SqliteRentalRegistry
from oracle.node.settings import NodeSettings
from oracle.node.storage import GroupCommitWriter, NodeStorage

__all__ = ["BATCH_STATUS", "ERROR_STATUS", "NodeChain", "build_runtime", "check_chain", "create_app"]


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
    from oracle.node.db_identity import check_db_deployment

    try:
        check_db_deployment(settings.db_path, settings.chain_id, settings.market_address)
    except BaseException:
        storage.close()
        raise
    if registry is None:
        registry = SqliteRentalRegistry(storage)
    for rental in settings.rentals:
        registry.upsert(Rental(rental.rental_id, rental.agent, rental.gpu_count, rental.region,
                               rental.grid_intensity_g_per_kwh, rental.start_ms,
                               gpu_model=rental.gpu_model, power_limit_w=rental.power_limit_w, end_ms=rental.end_ms))
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
        peers=PeerVerifier(settings.chain_id, settings.market_address, (attestor.address, *settings.peer_signers),
                           window_s=settings.peer_auth_window_s),
        peer_limiter=TokenBucketLimiter(settings.peer_rate_per_s, settings.peer_burst),
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

    With ``settings.rpc_url`` the chain side (:class:`NodeChain`) runs in the app's lifespan; the
    endpoint is checked once here (a wrong chain id or a market without code is refused; an
    unreachable endpoint is not: the node starts and keeps trying).

    Raises :class:`oracle.errors.ConfigError` if the node key cannot be loaded or the RPC
    endpoint serves the wrong chain.
    """
    if settings.rpc_url is not None:
        check_chain_now(settings)
    key = settings.load_node_key() if node_key is None else node_key
    runtime = build_runtime(settings, node_key=key, registry=registry, clock=clock)
    chain = NodeChain(settings, runtime, key) if settings.rpc_url is not None else None
    challenge_loop: ChallengeLoop | None = None
    if settings.challenges != "off":
        runtime.challenges, challenge_loop = build_challenges(settings, runtime, key, clock)
        if hasattr(runtime.attestor, "challenges"):  # metering's ChallengeLedger hook
            runtime.attestor.challenges = MeteringLedger(runtime.challenges)

    retention = None
    if chain is not None:  # rentals close on chain: archive their telemetry, prune it after the dispute window
        feed = chain.services.feed
        retention = Retention(runtime.storage, settings.archive_path,
                              lambda: [r for r, s in list(feed.status.items()) if s == "closed"],
                              settings.dispute_window_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if chain is not None:
            chain.start()
        if retention is not None:
            retention.start()
        if challenge_loop is not None:
            challenge_loop.start()
        try:
            yield
        finally:
            if challenge_loop is not None:
                await asyncio.to_thread(challenge_loop.stop)
            if retention is not None:
                await asyncio.to_thread(retention.stop)
            if chain is not None:
                await asyncio.to_thread(chain.stop)
            runtime.close()

    app = FastAPI(
        title="gpurent attestation node",
        version=__version__,
        description="Ingests signed GPU telemetry, meters it, and signs EIP-712 usage reports "
                    "(docs/protocol.md).",
        lifespan=lifespan,
    )
    app.state.node = runtime
    app.state.chain = chain
    app.state.retention = retention
    app.add_middleware(
        BodyGuard, limit_for=_body_limit(settings), body_timeout_s=settings.body_timeout_s,
        max_inflight_bytes=settings.max_inflight_body_bytes,
        on_refusal=lambda reason: runtime.metrics.edge_refusals.labels(reason).inc())
    install_error_handlers(app)
    app.include_router(batches.router)
    app.include_router(reports.router)
    app.include_router(health.router)
    app.include_router(challenges.router)
    app.openapi = _openapi_with_wire_schema(app)
    return app


SMALL_BODY_BYTES = 256 * 1024  # POST /v1/batch-signatures: 256 report references


def _body_limit(settings: NodeSettings) -> Callable[[str], int]:
    def limit_for(path: str) -> int:
        if path.startswith("/v1/rentals/") and path.endswith("/batches"):
            return settings.max_body_bytes
        if path.startswith("/v1/challenges/") and path.endswith("/openings"):  # Merkle paths of 64 cells
            return settings.max_body_bytes
        return SMALL_BODY_BYTES

    return limit_for


