"""The node's proof-of-GPU machinery around :class:`~oracle.node.challenges.ChallengeService`:
beacons from the chain (:class:`Web3BeaconSource`), the thread that drives the service
(:class:`ChallengeLoop`: beacons, due verdicts, peers' verdicts), the ledger metering asks
(:class:`MeteringLedger`) and the wiring from a node's settings (:func:`build_challenges`).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Callable

from oracle.chain.background import BackgroundLoop
from oracle.node.challenge_store import ChallengeStore
from oracle.proof.schedule import Beacon

if TYPE_CHECKING:
    from oracle.node.challenges import BeaconSource, ChallengeService

log = logging.getLogger("oracle.node.challenges")  # the name operators' log filters know

DEFAULT_SLASH_WINDOW_S = 3_600  # the protocol's default slash window (metering's DEFAULT_SLASH_WINDOW_SECONDS)


class MeteringLedger:
    """The ``ChallengeLedger`` metering asks (oracle.metering.challenges): the quorum's outcomes,
    with the unpaid spans per GPU (only the GPU that failed is unpaid)."""

    def __init__(self, service: ChallengeService) -> None:
        self.service = service

    def outcomes(self, rental_id: int, up_to_ms: int) -> Any:
        from oracle.metering.challenges import ChallengeOutcomes

        passed, failed, unpaid = self.service.outcomes(rental_id, up_to_ms)
        per_gpu = tuple(sorted((int(gpu), int(start), int(end)) for gpu, start, end in unpaid if end > start))
        return ChallengeOutcomes(passed, failed, unpaid_gpu_intervals=per_gpu)

    def faults(self, rental_id: int, up_to_ms: int) -> list[Any]:
        """The CHALLENGE_FAILED faults (metering's ``Fault``, kind 5) the quorum's verdicts make,
        one per slash window of the rental, for metering to file with its own faults."""
        from oracle.metering.faults import Fault, FaultKind

        rental = self.service.registry.get(rental_id)
        window_s = getattr(rental, "slash_window_seconds", 0) or DEFAULT_SLASH_WINDOW_S
        return [Fault(FaultKind.CHALLENGE_FAILED, start, due, detail, gpu)
                for gpu, start, due, _, detail in self.service.failed_windows(rental_id, up_to_ms, window_s)]

    def end_fault(self, rental_id: int) -> Any:
        """A failed end challenge as a CHALLENGE_FAILED fault at the rental's last millisecond (a
        FaultReport's ``observedAt`` must lie in the rental), for the first GPU that failed."""
        from oracle.metering.faults import Fault, FaultKind

        end = self.service.end_outcome(rental_id)
        end_ms = self.service.end_ms_of(rental_id)
        if end is None or end[0] is None or end_ms is None:
            return None
        gpu, outcome = end
        return Fault(FaultKind.CHALLENGE_FAILED, end_ms, end_ms, f"end challenge gpu {gpu} {outcome}", gpu)


class Web3BeaconSource:
    """Blocks ``confirmations`` behind the head, each once, as beacons (at most ``max_blocks`` a poll)."""

    def __init__(self, w3: Any, confirmations: int = 0, start_block: int | None = None, max_blocks: int = 256) -> None:
        self.w3 = w3
        self.confirmations = confirmations
        self.next_block = start_block
        self.max_blocks = max_blocks

    def poll(self) -> list[Beacon]:
        head = int(self.w3.eth.block_number) - self.confirmations
        if self.next_block is None:
            self.next_block = max(0, head)
        beacons = []
        while self.next_block <= head and len(beacons) < self.max_blocks:
            block = self.w3.eth.get_block(self.next_block)
            beacons.append(Beacon(int(block["number"]), bytes(block["hash"]), int(block["timestamp"])))
            self.next_block += 1
        return beacons


class ChallengeLoop(BackgroundLoop):
    """Polls beacons, decides due challenges and collects the peers' verdicts, every ``interval_s``."""

    thread_name = "gpurent-challenges"

    def __init__(self, service: ChallengeService, source: BeaconSource | None, interval_s: float = 1.0) -> None:
        self.service = service
        self.source = source
        self.interval_s = interval_s
        self.errors = 0
        self._stop = threading.Event()
        self._thread = None

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # RPC or peer trouble: counted, logged, retried next tick
                self.errors += 1
                log.warning("challenge loop: %s: %s", type(exc).__name__, str(exc)[:300])
            self._stop.wait(self.interval_s)

    def tick(self) -> None:
        if self.source is not None:
            self.service.ingest_beacons(self.source.poll())
        self.service.decide_all_due()
        self.collect_peer_verdicts()

    def collect_peer_verdicts(self) -> None:
        import httpx

        service = self.service
        if not service.config.peers:
            return
        for challenge_id in service.store.awaiting_quorum():
            if service.quorum_outcome(challenge_id) is not None:
                continue
            for peer in service.config.peers:
                try:
                    response = httpx.get(f"{peer}/v1/challenges/{challenge_id}/verdict", timeout=2.0)
                except httpx.HTTPError:
                    continue
                if response.status_code == 200:
                    body = response.json()
                    service.add_peer_verdict(challenge_id, body["outcome"], body["signer"],
                                             bytes.fromhex(body["signature"][2:]))


def build_challenges(settings: Any, runtime: Any, node_key: bytes,
                     clock: Callable[[], int] | None = None) -> tuple[ChallengeService, ChallengeLoop]:
    """The service and its loop for a node's settings (``settings.challenges != "off"``)."""
    from oracle.chain.contract import connect
    from oracle.node.challenges import ChallengeConfig, ChallengeService

    config = ChallengeConfig(
        chain_id=settings.chain_id, market=settings.market_address, mode=settings.challenges,
        mean_interval_s=settings.challenge_mean_interval_s, quorum=settings.challenge_quorum,
        check_telemetry=settings.challenge_check_telemetry, peers=tuple(settings.peers),
        lie=settings.fault == "lie_verdicts", clock=settings.challenge_clock)
    service = ChallengeService(ChallengeStore(settings.db_path), runtime.attestor.registry, node_key, config, clock)
    source = Web3BeaconSource(connect(settings.beacon_rpc_url or settings.rpc_url, timeout_s=5.0),
                              confirmations=settings.confirmations if settings.rpc_url else 0)
    return service, ChallengeLoop(service, source, settings.challenge_poll_interval_s)
