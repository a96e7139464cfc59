"""When each rented GPU is challenged: a lottery on every block, the same on every node. Pure.

Beacons are blocks (number, hash, timestamp). A rental's first beacon after its start second
issues the start challenge (not the start block itself: its timestamp is the rental's start, and a
chain whose clock is set, as a time-compressed demo's is, may put it far in the past); every later beacon b issues one with probability
dt / MEAN_INTERVAL_S (dt: seconds since the previous beacon), decided by
keccak(chain, market, rentalId, blockhash(b)) < 2**256 * dt / mean. Nobody knows whether a
block draws a challenge, or its seed, before the block exists; every node following the same
chain computes the same challenges. A draw inside the previous challenge's answer window is
skipped (one challenge at a time per rental), so challenges never overlap.
Each challenge covers every GPU of the rental: one seed per GPU index.

Once the rental has ended, the first beacon at least the profile's ``end_delay_s`` after the end
and after the last challenge's open deadline issues the *end challenge* (:func:`end_challenges`):
start-sized, because the renter's job is gone and the listed memory is free again, with index
END_CHALLENGE_INDEX. The delay lets every node see the end before the challenge's deadline runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from oracle.proof.params import END_CHALLENGE_INDEX, ChallengeProfile
from oracle.proof.seeds import challenge_id, challenge_seed, schedule_draw


@dataclass(frozen=True, slots=True)
class Beacon:
    number: int
    hash: bytes
    timestamp_s: int


@dataclass(frozen=True, slots=True)
class RentalSchedule:
    """What the schedule of one rental depends on (all fixed on chain at openRental)."""

    rental_id: int
    start_s: int
    gpu_count: int
    profile: ChallengeProfile
    end_s: int | None = None


@dataclass(frozen=True, slots=True)
class Challenge:
    id: str                  # 0x-hex of the seed
    rental_id: int
    index: int               # 0: the start challenge, then 1, 2, ... per drawn beacon
    gpu_index: int
    beacon: Beacon
    seed: bytes
    profile: ChallengeProfile

    @property
    def issued_at_ms(self) -> int:
        return self.beacon.timestamp_s * 1000

    @property
    def shape(self):
        return self.profile.size(self.index).shape

    @property
    def commit_deadline_ms(self) -> int:
        return self.issued_at_ms + self.profile.size(self.index).commit_deadline_ms

    @property
    def open_deadline_ms(self) -> int:
        """Openings are due this long after the commit deadline (their seed comes from the first
        beacon at or after it)."""
        return self.commit_deadline_ms + self.profile.open_window_ms


def drawn(draw: int, dt_s: int, mean_interval_s: int) -> bool:
    """True iff the 256-bit ``draw`` falls under 2**256 * dt / mean (always when dt >= mean)."""
    if dt_s <= 0:
        return False
    return draw < min(2**256, (2**256 * dt_s) // mean_interval_s)


class RentalScheduler:
    """The schedule of one rental, fed one beacon at a time (ascending block numbers)."""

    def __init__(self, rental: RentalSchedule, chain_id: int, market: str, mean_interval_s: int) -> None:
        self.rental = rental
        self.chain_id = chain_id
        self.market = market
        self.mean_interval_s = mean_interval_s
        self.previous: Beacon | None = None
        self.busy_until_ms = -1
        self.index = 0

    def feed(self, beacon: Beacon) -> list[Challenge]:
        rental = self.rental
        if beacon.timestamp_s <= rental.start_s or (self.previous is not None and beacon.number <= self.previous.number):
            return []
        if rental.end_s is not None and beacon.timestamp_s > rental.end_s:
            return []
        previous, self.previous = self.previous, beacon
        if previous is not None and not (
                beacon.timestamp_s * 1000 > self.busy_until_ms and
                drawn(schedule_draw(beacon.hash, self.chain_id, self.market, rental.rental_id),
                      beacon.timestamp_s - previous.timestamp_s, self.mean_interval_s)):
            return []
        out = []
        for gpu in range(rental.gpu_count):
            seed = challenge_seed(beacon.hash, self.chain_id, self.market, rental.rental_id, gpu, self.index)
            out.append(Challenge(challenge_id(seed), rental.rental_id, self.index, gpu, beacon, seed, rental.profile))
        self.busy_until_ms = out[-1].open_deadline_ms
        self.index += 1
        return out


def end_challenge_not_before_s(end_s: int, last_open_deadline_ms: int | None, delay_s: int) -> int:
    """The earliest beacon timestamp that may issue the end challenge: ``delay_s`` (at least 1)
    after the end second (the end block's hash was known to whoever ended the rental), and after
    the open deadline of the last challenge issued up to the end (challenges never overlap)."""
    after_s = end_s + max(1, delay_s)
    if last_open_deadline_ms is not None:
        after_s = max(after_s, last_open_deadline_ms // 1000 + 1)
    return after_s


def end_challenges(rental: RentalSchedule, beacon: Beacon, chain_id: int, market: str) -> list[Challenge]:
    """The end challenge of ``rental``, one per GPU, issued by ``beacon`` (the first beacon at or
    after :func:`end_challenge_not_before_s`)."""
    out = []
    for gpu in range(rental.gpu_count):
        seed = challenge_seed(beacon.hash, chain_id, market, rental.rental_id, gpu, END_CHALLENGE_INDEX)
        out.append(Challenge(challenge_id(seed), rental.rental_id, END_CHALLENGE_INDEX, gpu, beacon, seed,
                             rental.profile))
    return out


def challenges(rental: RentalSchedule, beacons: Iterable[Beacon], chain_id: int, market: str,
               mean_interval_s: int) -> list[Challenge]:
    """Every challenge of ``rental`` issued by ``beacons`` (ascending block numbers)."""
    scheduler = RentalScheduler(rental, chain_id, market, mean_interval_s)
    return [challenge for beacon in beacons for challenge in scheduler.feed(beacon)]


def expected_gpu_time_share(profile: ChallengeProfile, mean_interval_s: int) -> float:
    """Share of a long rental's GPU time the periodic challenges take: expected solve time / mean
    interval (the start challenge adds one solve per rental, before the renter's job starts)."""
    return profile.periodic.expected_solve_ms / 1000 / mean_interval_s
