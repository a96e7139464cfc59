"""When each rented GPU is challenged: a lottery on every block, the same on every node. Pure.

Beacons are blocks (number, hash, timestamp). A rental's first beacon at or after its start
issues the start challenge; every later beacon b issues one with probability
dt / MEAN_INTERVAL_S (dt: seconds since the previous beacon), decided by
keccak(chain, market, rentalId, blockhash(b)) < 2**256 * dt / mean. Nobody knows whether a
block draws a challenge, or its seed, before the block exists; every node following the same
chain computes the same challenges. A draw inside the previous challenge's answer window is
skipped (one challenge at a time per rental), so challenges never overlap.
Each challenge covers every GPU of the rental: one seed per GPU index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from oracle.proof.params import ChallengeProfile
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
    def commit_deadline_ms(self) -> int:
        return self.issued_at_ms + self.profile.commit_deadline_ms

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


def challenges(rental: RentalSchedule, beacons: Iterable[Beacon], chain_id: int, market: str,
               mean_interval_s: int) -> list[Challenge]:
    """Every challenge of ``rental`` issued by ``beacons`` (ascending block numbers)."""
    out: list[Challenge] = []
    previous: Beacon | None = None
    busy_until_ms = -1
    index = 0
    for beacon in beacons:
        if beacon.timestamp_s < rental.start_s:
            continue
        if rental.end_s is not None and beacon.timestamp_s > rental.end_s:
            break
        if previous is None:
            issue = True  # the start challenge
        else:
            issue = (beacon.timestamp_s * 1000 > busy_until_ms and
                     drawn(schedule_draw(beacon.hash, chain_id, market, rental.rental_id),
                           beacon.timestamp_s - previous.timestamp_s, mean_interval_s))
        previous = beacon
        if not issue:
            continue
        for gpu in range(rental.gpu_count):
            seed = challenge_seed(beacon.hash, chain_id, market, rental.rental_id, gpu, index)
            out.append(Challenge(challenge_id(seed), rental.rental_id, index, gpu, beacon, seed, rental.profile))
        busy_until_ms = out[-1].open_deadline_ms
        index += 1
    return out


def expected_gpu_time_share(profile: ChallengeProfile, mean_interval_s: int) -> float:
    """Share of a long rental's GPU time challenges take: expected solve time / mean interval
    (the start challenge adds one solve per rental)."""
    return profile.expected_solve_ms / 1000 / mean_interval_s
