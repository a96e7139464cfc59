"""The node's challenge service without HTTP: issue, answer, judge, record-before-publish."""

from __future__ import annotations

import pytest

from oracle.node.challenge_store import ChallengeStore
from oracle.node.challenges import ChallengeConfig, ChallengeError, ChallengeService, verdict_digest
from oracle.node.errors import ReportConflict
from oracle.node.rentals import InMemoryRentalRegistry, Rental
from oracle.node.storage import NodeStorage
from oracle.proof.merkle import keccak
from oracle.proof.params import DEV_SHAPE
from oracle.proof.schedule import Beacon
from oracle.proof.seeds import opening_cells
from oracle.proof.solver import NumpySolver
from oracle.telemetry.batches import address_of, recover_batch_signer, sign_batch_hash

AGENT_KEY, OTHER_KEY, NODE_KEY = bytes.fromhex("a1" * 32), bytes.fromhex("a2" * 32), bytes.fromhex("b2" * 32)
START_S = 1_700_000_000
UUID = "GPU-unit"


class Clock:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture
def node(tmp_path):
    storage = NodeStorage(tmp_path / "node.sqlite3")
    registry = InMemoryRentalRegistry([Rental(1, address_of(AGENT_KEY), 1, "test", 400, START_S * 1000)])
    storage.put_rental(1, address_of(AGENT_KEY), 1, "test", 400, START_S * 1000)
    clock = Clock(START_S * 1000)
    config = ChallengeConfig(chain_id=31337, market="0x" + "42" * 20, mode="dev", mean_interval_s=3600, quorum=1,
                             check_telemetry=False)
    service = ChallengeService(ChallengeStore(tmp_path / "node.sqlite3"), storage, registry, NODE_KEY, config, clock)
    yield service, clock
    service.store.close()
    storage.close()


def _beacon(number: int, ts: int) -> Beacon:
    return Beacon(number, keccak(number.to_bytes(8, "big")), ts)


def _issue(service):
    service.ingest_beacons([_beacon(10, START_S - 5), _beacon(11, START_S + 1)])
    (challenge,) = service.pending(1)
    return challenge


def _commit(service, challenge, key=AGENT_KEY, uuid=UUID):
    seed = bytes.fromhex(challenge["id"][2:])
    solution = NumpySolver().solve(seed, DEV_SHAPE, uuid, "1")
    result = service.post_commitment(challenge["id"], solution.top_root, uuid, "1",
                                     sign_batch_hash(key, solution.digest))
    return solution, result


def test_the_start_challenge_comes_from_the_first_block_at_or_after_the_start(node):
    service, _ = node
    challenge = _issue(service)
    assert challenge["beacon_number"] == 11 and challenge["index"] == 0 and challenge["cells"] is None


def test_a_commitment_signed_by_another_key_is_refused(node):
    service, _ = node
    with pytest.raises(ChallengeError) as refused:
        _commit(service, _issue(service), key=OTHER_KEY)
    assert refused.value.status == 403


def test_a_second_different_commitment_is_refused_and_the_first_stands(node):
    service, _ = node
    challenge = _issue(service)
    _commit(service, challenge)
    with pytest.raises(ChallengeError) as refused:
        _commit(service, challenge, uuid="GPU-another")
    assert refused.value.status == 409


def test_openings_are_refused_until_the_block_after_the_commit_deadline_exists(node):
    service, clock = node
    challenge = _issue(service)
    solution, _ = _commit(service, challenge)
    with pytest.raises(ChallengeError) as refused:
        service.post_openings(challenge["id"], [])
    assert refused.value.reason == "not_open"
    service.ingest_beacons([_beacon(12, START_S + 1 + 5)])
    cells = [tuple(c) for c in service.pending(1)[0]["cells"]]
    assert cells == opening_cells(bytes.fromhex(challenge["id"][2:]), solution.digest, _beacon(12, 0).hash,
                                  DEV_SHAPE.opened, DEV_SHAPE.segments, DEV_SHAPE.rows)
    clock.now_ms += 2_000
    result = service.post_openings(challenge["id"], [o.to_wire() for o in solution.open(cells)])
    assert result["verified"] and result["outcome"] == "passed"


def test_a_verdict_is_recorded_before_it_is_signed_and_never_changes(node):
    service, clock = node
    challenge = _issue(service)
    clock.now_ms = challenge["commit_deadline_ms"] + 1
    verdict = service.verdict(challenge["id"])
    assert verdict.outcome == "missed"
    assert recover_batch_signer(verdict_digest(challenge["id"], "missed"), verdict.signature) == address_of(NODE_KEY)
    stored = service.store.challenge(challenge["id"])
    with pytest.raises(ReportConflict):
        service.store.record_verdict(stored, "passed", "changed my mind", clock.now_ms)
    assert service.store.verdict(challenge["id"]).outcome == "missed"


def test_outcomes_count_only_challenges_due_by_the_period_end(node):
    service, clock = node
    challenge = _issue(service)
    clock.now_ms = challenge["commit_deadline_ms"] + 1
    service.decide_all_due()
    issued = challenge["issued_at_ms"]
    assert service.outcomes(1, issued + 1_000) == (0, 0, [])
    late_enough = challenge["open_deadline_ms"] + 120_000
    assert service.outcomes(1, late_enough) == (0, 1, [(0, issued, late_enough)])


def test_a_peer_verdict_counts_only_with_its_own_signature(node):
    service, _ = node
    challenge = _issue(service)
    peer_key = bytes.fromhex("c3" * 32)
    good = sign_batch_hash(peer_key, verdict_digest(challenge["id"], "passed"))
    assert service.add_peer_verdict(challenge["id"], "passed", address_of(peer_key), good)
    assert not service.add_peer_verdict(challenge["id"], "wrong", address_of(peer_key), good)
    assert service.store.peer_verdicts(challenge["id"]) == {address_of(peer_key): "passed"}
