"""Cheating provers for the tests: each is the honest numpy solver with one thing wrong."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oracle.proof.params import WorkShape
from oracle.proof.seeds import opening_cells
from oracle.proof.solver import NumpySolver, Solution
from oracle.proof.verify import Verification, verify_openings
from oracle.proof.work import Inputs

BEACON_AFTER_COMMIT = b"\x5a" * 32


@dataclass
class PartialSolver(NumpySolver):
    """Computes only a share of the rows; the others are random bytes (with matching sketches)."""

    faked_fraction: float = 0.25
    rng_seed: int = 7

    def solve(self, seed: bytes, shape: WorkShape, gpu_uuid: str, gpu_serial: str) -> Solution:
        rng = np.random.default_rng([self.rng_seed, *seed[:8]])
        self._faked = rng.random(shape.rows) < self.faked_fraction
        self._rng = rng
        return super().solve(seed, shape, gpu_uuid, gpu_serial)

    def after_segment(self, checkpoint: int, state: np.ndarray) -> np.ndarray:
        state = state.copy()
        state[self._faked] = self._rng.integers(-128, 128, size=(int(self._faked.sum()), state.shape[1]),
                                                dtype=np.int8)
        return state


@dataclass
class PrecomputedTableSolver(NumpySolver):
    """Built its table before the seed was known (from a guessed seed) and reuses it."""

    guessed_seed: bytes = b"\x00" * 32

    def build_table(self, inputs: Inputs) -> list[np.ndarray]:
        return super().build_table(Inputs(self.guessed_seed, inputs.shape))


def judge_solution(solution: Solution, seed: bytes, shape: WorkShape, beacon: bytes = BEACON_AFTER_COMMIT,
                   top_root: bytes | None = None) -> Verification:
    """What a node does: draw the cells from the commitment and a later block hash, verify."""
    top_root = solution.top_root if top_root is None else top_root
    cells = opening_cells(seed, solution.digest, beacon, shape.opened, shape.segments, shape.rows)
    return verify_openings(seed, shape, top_root, cells, solution.open(cells))
