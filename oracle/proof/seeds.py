"""Every random choice of a challenge, derived from chain data and commitments. Pure (keccak).

Domain tags keep each derivation apart; integers are fixed-width big-endian.
"""

from __future__ import annotations

from oracle.proof.merkle import keccak

VERSION = b"gpurent.pog.v1"


def _u(value: int, size: int = 32) -> bytes:
    return int(value).to_bytes(size, "big")


def _words(seed: bytes, count: int) -> list[int]:
    """``count`` 256-bit words expanded from ``seed``."""
    return [int.from_bytes(keccak(seed + _u(i, 8)), "big") for i in range(count)]


def schedule_draw(beacon_hash: bytes, chain_id: int, market: str, rental_id: int) -> int:
    """The 256-bit lottery number of one rental at one beacon block."""
    return int.from_bytes(keccak(VERSION + b".draw" + _u(chain_id) + bytes.fromhex(market[2:]) + _u(rental_id)
                                 + beacon_hash), "big")


def challenge_seed(beacon_hash: bytes, chain_id: int, market: str, rental_id: int, gpu_index: int,
                   challenge_index: int) -> bytes:
    """keccak(version || chain || market || rentalId || block hash || GPU index || challenge index)."""
    return keccak(VERSION + b".seed" + _u(chain_id) + bytes.fromhex(market[2:]) + _u(rental_id) + beacon_hash
                  + _u(gpu_index, 4) + _u(challenge_index, 8))


def challenge_id(seed: bytes) -> str:
    return "0x" + seed.hex()


def generator_key(seed: bytes, what: bytes, index: int = 0) -> tuple[int, int]:
    """A 128-bit Philox4x64 key for one seeded matrix (``what`` in B, X0, H, P)."""
    digest = keccak(VERSION + b".gen." + what + seed + _u(index, 8))
    return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:16], "little")


def initial_root(seed: bytes) -> bytes:
    """The stand-in checkpoint root of the seeded initial state (checkpoint 0 is never committed)."""
    return keccak(VERSION + b".x0" + seed)


def segment_lookups(seed: bytes, segment: int, checkpoint_root: bytes, steps: int, lookups: int,
                    table_entries: int, rows: int) -> list[list[tuple[int, int]]]:
    """For each step of a segment, its (table entry, row offset) pairs, drawn from
    ``checkpoint_root`` = :func:`plan_root_checkpoint` (segment)'s root: nobody knows a segment's
    lookups before the checkpoint two segments earlier is computed (one segment of lag lets the
    prover hash a checkpoint while its GPU computes the next segment)."""
    words = _words(VERSION + b".seg" + seed + _u(segment, 8) + checkpoint_root, steps * lookups)
    plan = []
    for step in range(steps):
        pairs = []
        for j in range(lookups):
            word = words[step * lookups + j]
            pairs.append(((word >> 128) % table_entries, (word & ((1 << 128) - 1)) % rows))
        plan.append(pairs)
    return plan


def plan_root_checkpoint(segment: int) -> int:
    """The checkpoint whose root draws ``segment``'s lookups (0: the seeded initial state)."""
    return max(segment - 1, 0)


def commitment_digest(seed: bytes, top_root: bytes, gpu_uuid: str, gpu_serial: str) -> bytes:
    """What the agent signs: the challenge, its Merkle root and the GPU that computed it."""
    return keccak(VERSION + b".commit" + seed + top_root + keccak(gpu_uuid.encode()) + keccak(gpu_serial.encode()))


def openings_digest(seed: bytes, openings_json: bytes) -> bytes:
    """What the agent signs when it posts openings: the challenge and the canonical JSON of them
    (so nobody else can post openings first and lock the agent's out)."""
    return keccak(VERSION + b".openings" + seed + keccak(openings_json))


def opening_cells(seed: bytes, commitment: bytes, beacon_hash: bytes, count: int, segments: int,
                  rows: int) -> list[tuple[int, int]]:
    """The (segment, row) cells to open: drawn from a block hash the agent could not know when it
    committed (the first beacon at or after the commit deadline)."""
    words = _words(VERSION + b".open" + seed + commitment + beacon_hash, count)
    return [((w >> 128) % segments, (w & ((1 << 128) - 1)) % rows) for w in words]
