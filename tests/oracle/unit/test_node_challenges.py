"""The node's challenge service without HTTP: issue, answer, judge, record-before-publish."""

from __future__ import annotations

import pytest

from oracle.node.challenge_store import ChallengeStore
from oracle.node.challenges import ChallengeConfig, ChallengeError, ChallengeService, verdict_digest
from oracle.node.errors import ReportConflict
from oracle.node.rentals import InMemoryRentalRegistry, Rental
from oracle.node.storage import NodeStorage
from oracle.proof.merkle import keccak
from oracle.proof.params import DEV_SHAPE, END_CHALLENGE_INDEX, profile_for
from oracle.proof.schedule import Beacon
from oracle.proof.seeds import opening_cells, openings_digest
from oracle.proof.solver import NumpySolver
from oracle.telemetry.batches import address_of, canonical_json, recover_batch_signer, sign_batch_hash

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
    service = ChallengeService(ChallengeStore(tmp_path / "node.sqlite3"), registry, NODE_KEY, config, clock)
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


def _sign_openings(challenge, openings, key=AGENT_KEY):
    return sign_batch_hash(key, openings_digest(bytes.fromhex(challenge["id"][2:]), canonical_json(openings)))


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
        service.post_openings(challenge["id"], [], _sign_openings(challenge, []))
    assert refused.value.reason == "not_open"
    service.ingest_beacons([_beacon(12, START_S + 1 + profile_for("dev").commit_deadline_ms // 1000)])
    cells = [tuple(c) for c in service.pending(1)[0]["cells"]]
    assert cells == opening_cells(bytes.fromhex(challenge["id"][2:]), solution.digest, _beacon(12, 0).hash,
                                  DEV_SHAPE.opened, DEV_SHAPE.segments, DEV_SHAPE.rows)
    clock.now_ms += 2_000
    openings = [o.to_wire() for o in solution.open(cells)]
    with pytest.raises(ChallengeError) as stranger:  # nobody else can post first and lock the agent out
        service.post_openings(challenge["id"], openings, _sign_openings(challenge, openings, OTHER_KEY))
    assert stranger.value.status == 403
    result = service.post_openings(challenge["id"], openings, _sign_openings(challenge, openings))
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
    due = challenge["open_deadline_ms"] + profile_for("dev").telemetry_grace_ms
    assert service.outcomes(1, due - 1) == (0, 0, [])
    assert service.outcomes(1, due) == (0, 1, [])  # counted, and unpaid from now on
    assert service.outcomes(1, due + 5_000) == (0, 1, [(0, due, due + 5_000)])
    assert issued < due


def test_a_peer_verdict_counts_only_with_its_own_signature(node):
    service, _ = node
    challenge = _issue(service)
    peer_key = bytes.fromhex("c3" * 32)
    good = sign_batch_hash(peer_key, verdict_digest(challenge["id"], "passed"))
    assert service.add_peer_verdict(challenge["id"], "passed", address_of(peer_key), good)
    assert not service.add_peer_verdict(challenge["id"], "wrong", address_of(peer_key), good)
    assert service.store.peer_verdicts(challenge["id"]) == {address_of(peer_key): "passed"}


def test_the_chain_clock_follows_the_newest_block_for_a_chain_whose_clock_was_set_back(tmp_path):
    registry = InMemoryRentalRegistry([Rental(1, address_of(AGENT_KEY), 1, "test", 400, START_S * 1000)])
    config = ChallengeConfig(chain_id=31337, market="0x" + "42" * 20, mode="dev", mean_interval_s=3600, quorum=1,
                             check_telemetry=False, clock="chain")
    wall = Clock(START_S * 1000 + 600_000)  # the chain runs ten minutes behind our clock
    service = ChallengeService(ChallengeStore(tmp_path / "n.sqlite3"), registry, NODE_KEY, config, wall)
    service.ingest_beacons([_beacon(1, START_S + 1)])
    assert service.now_ms() == (START_S + 1) * 1000
    service.store.close()


def test_dev_challenge_settings_are_refused_on_a_real_chain_outside_dev_mode(tmp_path):
    from oracle.errors import ConfigError
    from oracle.node.settings import load_settings

    base = {"GPURENT_NODE_MARKET_ADDRESS": "0x" + "42" * 20, "GPURENT_NODE_PRIVATE_KEY": "b2" * 32,
            "GPURENT_NODE_DEV_MODE": "false", "GPURENT_NODE_BEACON_RPC_URL": "http://127.0.0.1:1",
            "GPURENT_NODE_CHAIN_ID": "8453"}
    for risky in ({"GPURENT_NODE_CHALLENGES": "dev"}, {"GPURENT_NODE_CHALLENGES": "model",
                                                        "GPURENT_NODE_CHALLENGE_CHECK_TELEMETRY": "false"},
                  {"GPURENT_NODE_CHALLENGES": "model", "GPURENT_NODE_CHALLENGE_CLOCK": "chain"}):
        with pytest.raises(ConfigError, match="dev mode or a local dev chain"):
            load_settings(env={**base, **risky})


def _ended(rental_id: int = 1, end_s: int = START_S + 300, gpus: int = 1) -> Rental:
    return Rental(rental_id, address_of(AGENT_KEY), gpus, "test", 400, START_S * 1000, end_ms=end_s * 1000 + 999)


def _service(tmp_path, name: str = "n", gpus: int = 1, check_telemetry: bool = False, mean_interval_s: int = 60):
    registry = InMemoryRentalRegistry([Rental(1, address_of(AGENT_KEY), gpus, "test", 400, START_S * 1000)])
    storage = NodeStorage(tmp_path / f"{name}.sqlite3")
    storage.put_rental(1, address_of(AGENT_KEY), gpus, "test", 400, START_S * 1000)
    config = ChallengeConfig(chain_id=31337, market="0x" + "42" * 20, mode="dev", mean_interval_s=mean_interval_s,
                             quorum=1, check_telemetry=check_telemetry)
    clock = Clock(START_S * 1000)
    service = ChallengeService(ChallengeStore(tmp_path / f"{name}.sqlite3"), registry, NODE_KEY, config, clock)
    return service, registry, storage, clock


def test_an_ended_rental_draws_no_more_challenges_and_late_draws_do_not_count(tmp_path):
    service, registry, storage, _ = _service(tmp_path)
    service.ingest_beacons([_beacon(n, START_S + 30 * n) for n in range(0, 40)])  # 20 min of blocks
    drawn_late = [c for c in service.store.rental_challenges(1) if c.issued_at_ms > (START_S + 300) * 1000]
    assert drawn_late, "at a 60 s mean interval, 15 minutes of blocks draw challenges"
    registry.upsert(_ended())
    service.ingest_beacons([_beacon(40, START_S + 1200)])
    periodic = [c for c in service.store.rental_challenges(1) if c.index != END_CHALLENGE_INDEX]
    assert periodic and all(c.issued_at_ms <= (START_S + 300) * 1000 + 999 for c in periodic)
    assert all(c.issued_at_ms <= (START_S + 300) * 1000 + 999 for c in service.store.undecided(1)
               if c.index != END_CHALLENGE_INDEX)
    passed, failed, _ = service.outcomes(1, (START_S + 2000) * 1000)
    assert passed + failed <= len(periodic)  # nothing drawn after the end counts in a report
    service.store.close()
    storage.close()


def test_an_ended_rental_gets_one_start_sized_end_challenge_per_gpu_from_the_first_block_after_its_delay(tmp_path):
    service, registry, storage, _ = _service(tmp_path, gpus=2)
    service.ingest_beacons([_beacon(n, START_S + 30 * n) for n in range(0, 40)])
    assert service.end_status(1) == "not_ended"
    registry.upsert(_ended(gpus=2))
    service.ingest_beacons([_beacon(40, START_S + 1200)])
    ends = [c for c in service.store.rental_challenges(1) if c.index == END_CHALLENGE_INDEX]
    assert sorted(c.gpu_index for c in ends) == [0, 1]
    before_end = [c for c in service.store.rental_challenges(1) if c.index != END_CHALLENGE_INDEX]
    not_before_s = max(START_S + 300 + profile_for("dev").end_delay_s,
                       max(c.open_deadline_ms for c in before_end) // 1000 + 1)
    first = min(n for n in range(41) if START_S + 30 * n >= not_before_s)
    assert {c.beacon_number for c in ends} == {first}
    assert profile_for("dev").size(END_CHALLENGE_INDEX) == profile_for("dev").start
    model = profile_for("NVIDIA H100 80GB HBM3")
    assert model.size(END_CHALLENGE_INDEX) == model.start != model.periodic  # the full-memory table again
    assert service.end_status(1) == "issued"
    assert len({c.id for c in ends}) == 2 and service.summary(1)["end_challenge"]["status"] == "issued"
    service.store.close()
    storage.close()


def test_every_node_issues_the_same_end_challenge_whenever_it_learns_of_the_end(tmp_path):
    beacons = [_beacon(n, START_S + 30 * n) for n in range(0, 40)]
    early, early_registry, s1, _ = _service(tmp_path, "early")
    early_registry.upsert(_ended())  # knew of the end before any block after it
    early.ingest_beacons(beacons)
    late, late_registry, s2, _ = _service(tmp_path, "late")
    late.ingest_beacons(beacons)  # drew periodic challenges past the end first
    late_registry.upsert(_ended())
    assert late.end_status(1) == "issued"  # the agent's poll issues it without a new block

    def end_ids(service):
        return sorted(c.id for c in service.store.rental_challenges(1) if c.index == END_CHALLENGE_INDEX)

    assert end_ids(early) and end_ids(early) == end_ids(late)
    for service, storage in ((early, s1), (late, s2)):
        service.store.close()
        storage.close()


def test_the_end_challenge_waits_for_its_block(tmp_path):
    service, registry, storage, _ = _service(tmp_path)
    service.ingest_beacons([_beacon(n, START_S + 30 * n) for n in range(0, 11)])  # up to START + 300
    registry.upsert(_ended())
    assert service.end_status(1) == "awaited"
    service.ingest_beacons([_beacon(n, START_S + 30 * n) for n in range(11, 20)])
    assert service.end_status(1) == "issued"
    service.store.close()
    storage.close()


def _answer(service, challenge, clock, cheat: bool = False):
    """Commit, then open the drawn cells once their block exists (as the agent does)."""
    seed = bytes.fromhex(challenge.id[2:])
    solution = NumpySolver().solve(seed, DEV_SHAPE, UUID, "1")
    clock.now_ms = challenge.issued_at_ms + 1_000
    service.post_commitment(challenge.id, solution.top_root, UUID, "1", sign_batch_hash(AGENT_KEY, solution.digest))
    cells = service.cells(service.store.challenge(challenge.id))
    openings = [o.to_wire() for o in solution.open([tuple(c) for c in cells])]
    if cheat:
        openings[0]["end"]["row"] = "0x" + ("00" * (len(openings[0]["end"]["row"]) // 2 - 1))
    clock.now_ms = challenge.commit_deadline_ms + 1_000
    return service.post_openings(challenge.id, openings,
                                 sign_batch_hash(AGENT_KEY, openings_digest(seed, canonical_json(openings))))


@pytest.mark.parametrize("answer", ["honest", "cheat", "none"])
def test_the_end_challenge_is_judged_without_telemetry_and_a_failure_is_a_fault_at_the_rental_end(tmp_path, answer):
    from oracle.attestation.reports import END_CHALLENGE_FAULT_ID, build_end_fault_report
    from oracle.metering.faults import FaultKind
    from oracle.node.challenges import MeteringLedger

    service, registry, storage, clock = _service(tmp_path, check_telemetry=True, mean_interval_s=10**9)
    registry.upsert(_ended())
    service.ingest_beacons([_beacon(n, START_S + 30 * n) for n in range(0, 20)])  # only start + end drawn
    (end,) = [c for c in service.store.rental_challenges(1) if c.index == END_CHALLENGE_INDEX]
    ledger = MeteringLedger(service)
    assert service.end_outcome(1) is None and ledger.end_fault(1) is None  # not decided yet
    if answer != "none":
        result = _answer(service, end, clock, cheat=answer == "cheat")
        assert result["verified"] is (answer == "honest")
    clock.now_ms = end.open_deadline_ms + 60_000
    service.decide_all_due()
    fault = ledger.end_fault(1)
    try:
        if answer == "honest":
            assert service.end_outcome(1) == (None, "passed") and fault is None  # no telemetry after the end needed
            return
        assert service.end_outcome(1) == (0, "wrong" if answer == "cheat" else "missed")
        assert fault.kind == FaultKind.CHALLENGE_FAILED and fault.end_ms == (START_S + 300) * 1000 + 999
        report = build_end_fault_report(1, fault, 1)
        assert report.fault_id == END_CHALLENGE_FAULT_ID and report.observed_at == START_S + 300  # inside the rental
        # never in a usage report: counted outcomes up to the end are the periodic ones only
        assert service.outcomes(1, (START_S + 300) * 1000 + 999)[:2] == service.outcomes(1, 10**15)[:2]
    finally:
        service.store.close()
        storage.close()


def test_failed_challenges_make_one_challenge_failed_fault_per_slash_window(tmp_path):
    registry = InMemoryRentalRegistry([Rental(1, address_of(AGENT_KEY), 1, "test", 400, START_S * 1000)])
    storage = NodeStorage(tmp_path / "n.sqlite3")
    storage.put_rental(1, address_of(AGENT_KEY), 1, "test", 400, START_S * 1000)
    config = ChallengeConfig(chain_id=31337, market="0x" + "42" * 20, mode="dev", mean_interval_s=60, quorum=1,
                             check_telemetry=False)
    clock = Clock(START_S * 1000)
    service = ChallengeService(ChallengeStore(tmp_path / "n.sqlite3"), registry, NODE_KEY, config, clock)
    service.ingest_beacons([_beacon(n, START_S + 30 * n) for n in range(0, 120)])  # an hour of blocks
    clock.now_ms = (START_S + 4000) * 1000
    service.decide_all_due()  # nobody answered: every challenge is missed
    issued = service.store.rental_challenges(1)
    faults = service.failed_windows(1, (START_S + 4000) * 1000, window_s=600)
    windows = {(c.issued_at_ms - START_S * 1000) // 600_000 for c in issued}
    assert [f[3] for f in faults] == sorted(windows) and len(issued) > len(faults)
    assert all(f[4].endswith("missed") for f in faults)
    early = service.failed_windows(1, (START_S + 700) * 1000, window_s=600)
    assert faults[:len(early)] == early  # the list only grows at its end as time passes
    service.store.close()
    storage.close()
