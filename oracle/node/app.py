"""``create_app(settings)``: the node's FastAPI application, wired from its parts.

With ``settings.rpc_url`` the app also runs the node's chain side (:class:`NodeChain`) for the
lifetime of the server: an event follower that feeds the rental registry from ``RentalStarted``,
and a settlement loop that aggregates signatures from this node and its peers and submits
``settleBatch``/``settle``/``slash`` with the node key. Without it, the node meters the rentals
listed in its settings and nothing else changes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from contextlib import asynccontextmanager
from typing import Any, Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from oracle import __version__
from oracle.errors import ConfigError, SigningError, StorageError
from oracle.node.api.deps import NodeRuntime
from oracle.node.api.routes import batches, challenges, health, reports
from oracle.node.attestor import Attestor, IngestLimits, SequenceUnavailable
from oracle.node.challenges import ChallengeError, ChallengeLoop, MeteringLedger, build_challenges
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
from oracle.node.api.guard import BodyGuard
from oracle.node.archive import Retention
from oracle.node.metrics import NodeMetrics
from oracle.node.peerauth import PeerAuth, PeerVerifier
from oracle.node.ratelimit import TokenBucketLimiter
from oracle.node.rentals import Rental, RentalRegistry, SqliteRentalRegistry
from oracle.node.settings import NodeSettings
from oracle.redact import redact, redact_url
from oracle.node.storage import GroupCommitWriter, NodeStorage

log = logging.getLogger(__name__)

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


def _install_error_handlers(app: FastAPI) -> None:
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
                               gpu_model=rental.gpu_model, power_limit_w=rental.power_limit_w))
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


def check_chain(w3: Any, settings: NodeSettings) -> None:
    """Refuse an RPC endpoint that serves another chain, or a market address without code there.

    Raises :class:`ConfigError` for those; RPC failures pass through (the caller retries).
    """
    chain_id = int(w3.eth.chain_id)
    if chain_id != settings.chain_id:
        raise ConfigError(f"rpc_url {redact_url(settings.rpc_url or '')} serves chain {chain_id}, but chain_id "
                          f"is {settings.chain_id}: the node would sign for one chain and follow another")
    if not bytes(w3.eth.get_code(settings.market_address)):
        raise ConfigError(f"no contract at market_address {settings.market_address} on chain {chain_id}")


class NodeChain:
    """The node's chain side (``settings.rpc_url`` set): :class:`oracle.node.aggregator.ChainServices`
    started once the RPC endpoint answers for the configured chain, plus what ``/metrics`` and
    ``/healthz`` report about it.

    Nothing here can take the HTTP API down: an unreachable RPC endpoint delays the start (retried
    with backoff), and the follower and settlement threads log, count and retry their errors.
    ``state``: starting, rpc_unreachable (not started yet), following, rpc_error (the latest
    follower poll failed), wrong_chain (refused: not started), stopped.
    """

    def __init__(self, settings: NodeSettings, runtime: NodeRuntime, node_key: bytes) -> None:
        from oracle.chain.tx import TxPolicy
        from oracle.node.chain_services import ChainServices

        assert settings.rpc_url is not None
        self.settings = settings
        self.metrics = runtime.metrics
        storage = runtime.storage
        self.peers = runtime.peers
        self.services = ChainServices(
            auth=PeerAuth(node_key, settings.chain_id, settings.market_address),  # peers know us as a signer
            rpc_url=settings.rpc_url,
            node_key=node_key,
            market_address=settings.market_address,
            node_urls=settings.aggregation_urls(),
            registries=[runtime.attestor.registry],
            db_path=str(settings.db_path),
            start_block=settings.chain_start_block,
            confirmations=settings.confirmations,
            poll_interval_s=settings.chain_poll_interval_s,
            settle_interval_s=settings.settle_interval_s,
            batch=settings.settle_batch,
            submit_delay_s=settings.submit_stagger_s,
            slash_faults=settings.slash_faults,
            policy=TxPolicy(max_fee_per_gas_cap_wei=settings.max_fee_per_gas_cap_wei),
            settle=settings.submits_settlements,
            local_head=lambda rental_id: storage.batch_head(rental_id)[0],
            on_outcome=self._count,
            settle_policy=settings.settle_policy(),
            max_rentals_per_round=settings.settle_max_rentals_per_round,
            max_reports_per_tx=settings.settle_max_reports_per_tx,
            max_faults_per_rental=settings.faults_per_rental_per_round,
            operator_registry=settings.operator_registry_address,
        )
        self._started = False
        self._stopped = False
        self._detail = ""
        self._wrong_chain = False
        self.warnings: list[str] = []
        self.last_submission: dict[str, Any] | None = None
        self._gas_counted: dict[str, None] = {}  # tx hashes already counted (a batch tx settles many rentals)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        runtime.metrics.attach_chain(self.status)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "NodeChain":
        self._thread = threading.Thread(target=self._start_when_reachable, name="gpurent-chain-start", daemon=True)
        self._thread.start()
        return self

    def _start_when_reachable(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                check_chain(self.services.client.w3, self.settings)
                self._check_signer_set()
            except ConfigError as exc:
                self._wrong_chain, self._detail = True, redact(str(exc))
                log.error("chain side not started: %s", exc)
                return
            except Exception as exc:  # RPC down or flapping: the API serves on, we retry
                self._detail = redact(f"{type(exc).__name__}: {exc}")[:300]
                log.warning("RPC %s unreachable (%s); retrying in %.1f s",
                            redact_url(self.settings.rpc_url or ""), self._detail, delay)
                if self._stop.wait(delay):
                    return
                delay = min(30.0, delay * 2)
                continue
            if self._stop.is_set():
                return
            self.services.start()
            self._started, self._detail = True, ""
            return

    def _check_signer_set(self) -> None:
        """Warn (do not refuse: governance may be about to add us) when our signatures cannot count."""
        client = self.services.client
        signer_set = client.signer_set()
        warnings = []
        if client.account not in signer_set.signers:
            warnings.append(f"this node's key {client.account} is not in the on-chain signer set "
                            f"v{signer_set.version}: its signatures do not count")
        if signer_set.version != self.settings.signer_set_version:
            warnings.append(f"signer_set_version is {self.settings.signer_set_version}, the chain's is "
                            f"v{signer_set.version}: reports signed by this node will be refused")
        if self.services.settle and int(client.w3.eth.get_balance(client.account)) == 0:
            warnings.append(f"this node's key {client.account} has no gas (0 ETH): it cannot submit settlements "
                            "or slashes; send it ETH (`gpurent chain fund ADDRESS` on a local chain)")
        for warning in warnings:
            log.warning("%s", warning)
        self.warnings = warnings
        self.peers.set_chain_signers(signer_set.signers)  # peers authenticate as these
        self.peers.refresh = lambda: client.signer_set().signers  # and after a rotation

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self.services.stop()
        self._stopped = True

    # ------------------------------------------------------------------ outcomes -> metrics
    def _count(self, outcome: Any) -> None:
        self.metrics.submissions.labels(outcome.status).inc()
        if outcome.gas_used and outcome.tx_hash and outcome.tx_hash not in self._gas_counted:
            self._gas_counted[outcome.tx_hash] = None
            while len(self._gas_counted) > 256:
                self._gas_counted.pop(next(iter(self._gas_counted)))
            kind = "reverted" if outcome.burned_gas else outcome.status
            self.metrics.settlement_gas.labels(kind).inc(outcome.gas_used)
        if outcome.status in ("settled", "slashed"):
            self.last_submission = {
                "rental_id": outcome.rental_id, "status": outcome.status, "sequence": outcome.sequence,
                "fault_id": outcome.fault_id, "tx_hash": outcome.tx_hash, "gas_used": outcome.gas_used,
                "at": int(time.time()),
            }

    # ------------------------------------------------------------------ what /healthz and /metrics show
    @property
    def state(self) -> str:
        if self._stopped:
            return "stopped"
        if self._wrong_chain:
            return "wrong_chain"
        if not self._started:
            return "rpc_unreachable" if self._detail else "starting"
        follower = self.services.follower
        if follower.last_error is not None:
            return "rpc_error"
        return "following" if follower.last_ok_at is not None else "starting"

    def status(self) -> dict[str, Any]:
        """A snapshot from the threads' own counters (no RPC, no I/O beyond a cursor read)."""
        services, state = self.services, self.state
        follower, stats = services.follower, services.follower.stats
        next_block: int | None = None
        if not self._stopped:
            try:
                next_block = follower.next_block()
            except Exception:  # the cursor store is closing
                next_block = None
        head = stats.head_block if stats.head_block >= 0 else None
        lag = None
        if head is not None and next_block is not None:
            lag = max(0, head - follower.confirmations - (next_block - 1))
        statuses = list(services.feed.status.values())
        return {
            "state": state,
            "detail": follower.last_error or self._detail or None,
            "warnings": list(self.warnings),
            "follower": {
                "confirmations": follower.confirmations,
                "head_block": head,
                "next_block": next_block,
                "lag_blocks": lag,
                "events": stats.events,
                "errors": stats.errors,
                "rewinds": stats.rewinds,
                "last_ok_age_s": None if follower.last_ok_at is None else round(time.time() - follower.last_ok_at, 1),
            },
            "rentals": {"active": statuses.count("active"), "ended": statuses.count("ended")},
            "settlement": {
                "enabled": services.settle,
                "round_errors": services.loop.errors,
                "last_settled_sequence": dict(services.due.last_settled),
                "deferred_by_value": services.due.deferred_by_value,
                "peer_rate_limited": services.aggregator.stats.get("rate_limited", 0),
                "slashes_not_sent": services.aggregator.stats.get("slash_not_sent", 0),
                "last_submission": self.last_submission,
            },
            "transactions": dict(services.client.sender.stats),
        }


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
        _check_chain_now(settings)
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
    _install_error_handlers(app)
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


def _check_chain_now(settings: NodeSettings) -> None:
    """One quick look at the RPC endpoint before serving: a misconfigured chain is refused now."""
    from oracle.chain.contract import connect

    try:
        check_chain(connect(settings.rpc_url or "", timeout_s=3.0), settings)
    except ConfigError:
        raise
    except Exception as exc:
        log.warning("RPC %s not reachable at startup (%s: %s); the node serves and keeps trying",
                    redact_url(settings.rpc_url or ""), type(exc).__name__, redact(str(exc))[:200])
