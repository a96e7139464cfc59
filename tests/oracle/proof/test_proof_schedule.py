"""The challenge schedule: the same on every node, unpredictable, at the protocol rate."""

from __future__ import annotations

import math

from oracle.proof import merkle
from oracle.proof.judge import Judged, rental_outcomes
from oracle.proof.params import MEAN_INTERVAL_S, all_profiles, profile_for
from oracle.proof.schedule import Beacon, RentalSchedule, challenges, expected_gpu_time_share

MARKET = "0x" + "42" * 20
DEV = profile_for("dev")


def _beacons(count: int, start_s: int = 1_000, block_s: int = 2, salt: bytes = b"") -> list[Beacon]:
    return [Beacon(i, merkle.keccak(salt + i.to_bytes(8, "big")), start_s + i * block_s) for i in range(count)]


def test_every_node_derives_the_same_challenges_from_the_same_blocks():
    rental = RentalSchedule(7, 1_010, 2, DEV)
    beacons = _beacons(5_000)
    first = challenges(rental, beacons, 31337, MARKET, 600)
    assert first == challenges(rental, list(beacons), 31337, MARKET, 600)
    assert first, "a rental always gets its start challenge"


def test_the_start_challenge_is_at_the_first_block_at_or_after_the_start_and_covers_every_gpu():
    rental = RentalSchedule(7, 1_011, 3, DEV)
    first = [c for c in challenges(rental, _beacons(100), 31337, MARKET, 10**9) if c.index == 0]
    assert [c.gpu_index for c in first] == [0, 1, 2]
    assert {c.beacon.timestamp_s for c in first} == {1_012}
    assert len({c.seed for c in first}) == 3


def test_another_block_hash_gives_other_times_and_other_seeds():
    rental = RentalSchedule(7, 1_000, 1, DEV)
    a = challenges(rental, _beacons(20_000), 31337, MARKET, 600)
    b = challenges(rental, _beacons(20_000, salt=b"fork"), 31337, MARKET, 600)
    assert [c.beacon.number for c in a] != [c.beacon.number for c in b]
    assert not {c.seed for c in a} & {c.seed for c in b}


def test_challenges_come_at_the_protocol_rate():
    """40,000 blocks of 2 s (22 h) at a mean interval of 600 s: ~133 challenges, within 4 sigma."""
    rental = RentalSchedule(9, 1_000, 1, DEV)
    issued = challenges(rental, _beacons(40_000), 31337, MARKET, 600)
    expected = 40_000 * 2 / 600
    assert abs(len(issued) - 1 - expected) <= 4 * math.sqrt(expected), len(issued)


def test_no_challenge_before_the_start_or_after_the_end_and_none_overlap():
    rental = RentalSchedule(9, 5_000, 1, DEV, end_s=50_000)
    issued = challenges(rental, _beacons(40_000), 31337, MARKET, 300)
    assert all(5_000 <= c.beacon.timestamp_s <= 50_000 for c in issued)
    for earlier, later in zip(issued, issued[1:]):
        assert later.issued_at_ms > earlier.open_deadline_ms


def test_challenges_take_at_most_one_percent_of_a_rentals_gpu_time_even_at_the_deadline():
    for profile in all_profiles():
        assert expected_gpu_time_share(profile, MEAN_INTERVAL_S) <= 0.01
        assert profile.periodic.commit_deadline_ms / 1000 / MEAN_INTERVAL_S <= 0.01, profile.name


def test_a_failed_challenge_leaves_its_gpu_unpaid_from_its_due_time_until_one_passes_again():
    due = 2_000  # each challenge is counted this long after its issue
    judged = [Judged(0, 1_000, True, 1_000 + due), Judged(1, 1_000, True, 1_000 + due),
              Judged(0, 5_000, False, 5_000 + due), Judged(1, 5_000, True, 5_000 + due),
              Judged(0, 9_000, True, 9_000 + due), Judged(1, 12_000, False, 12_000 + due)]
    passed, failed, unpaid = rental_outcomes(judged, up_to_ms=20_000)
    assert (passed, failed) == (4, 2)
    assert unpaid == [(0, 7_000, 11_000), (1, 14_000, 20_000)]
    assert rental_outcomes(judged, up_to_ms=6_000) == (2, 0, [])


def test_unpaid_time_never_takes_back_what_an_earlier_report_paid():
    """Cumulative reports: for every pair of period ends t1 < t2, the time unpaid at t2 inside
    [0, t1] is contained in what was already unpaid at t1 (the contract refuses a report whose
    available time decreases)."""
    judged = [Judged(0, 1_000, False, 3_000), Judged(0, 4_000, False, 6_000), Judged(0, 8_000, True, 10_000),
              Judged(0, 12_000, False, 14_000)]

    def unpaid_before(t_end: int, t: int) -> int:
        return sum(max(0, min(e, t) - s) for _, s, e in rental_outcomes(judged, t_end)[2])

    for t1 in range(0, 20_000, 500):
        for t2 in range(t1, 20_000, 500):
            assert unpaid_before(t2, t1) == unpaid_before(t1, t1), (t1, t2)
