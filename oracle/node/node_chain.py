"""The node's chain side in the app (``settings.rpc_url`` set): :class:`NodeChain` starts the
follower and settlement threads once the RPC endpoint answers for the configured chain, and
:func:`check_chain` refuses an endpoint that serves another chain or no market."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from oracle.errors import ConfigError
from oracle.node.api.deps import NodeRuntime
from oracle.node.peerauth import PeerAuth
from oracle.node.settings import NodeSettings
from oracle.redact import redact, redact_url

log = logging.getLogger("oracle.node.app")  # the name operators' log filters know


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


def check_chain_now(settings: NodeSettings) -> None:
    """One quick look at the RPC endpoint before serving: a misconfigured chain is refused now."""
    from oracle.chain.contract import connect

    try:
        check_chain(connect(settings.rpc_url or "", timeout_s=3.0), settings)
    except ConfigError:
        raise
    except Exception as exc:
        log.warning("RPC %s not reachable at startup (%s: %s); the node serves and keeps trying",
                    redact_url(settings.rpc_url or ""), type(exc).__name__, redact(str(exc))[:200])
