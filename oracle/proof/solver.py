"""Solving a challenge: the CPU path (numpy, small sizes only) and what every backend shares.

A backend computes the checkpoints (:meth:`Solver._compute`) and can later produce any rows of
any checkpoint (:meth:`Solution.open`). The CUDA path is oracle/proof/solver_torch.py, behind the
optional extra ``gpurent[gpu]``. Nothing here ever claims a result it did not compute: a
commitment is built from the sketches of the rows the backend actually produced.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from oracle.errors import ConfigError
from oracle.proof.answer import CellOpening, Commitments
from oracle.proof.params import WorkShape
from oracle.proof.seeds import commitment_digest, initial_root, plan_root_checkpoint, segment_lookups
from oracle.proof.work import Inputs, full_step

CPU_MAX_TABLE_BYTES = 256 << 20   # the numpy path refuses production sizes (it would take hours)


class Solution:
    """A computed challenge: its commitment and the rows needed to open any cell."""

    def __init__(self, seed: bytes, shape: WorkShape, commitments: Commitments,
                 rows_at: Callable[[list[tuple[int, int]]], dict[tuple[int, int], bytes]], inputs: Inputs,
                 gpu_uuid: str, gpu_serial: str, solve_ms: int) -> None:
        self.seed = seed
        self.shape = shape
        self.commitments = commitments
        self._rows_at = rows_at
        self.inputs = inputs
        self.gpu_uuid = gpu_uuid
        self.gpu_serial = gpu_serial
        self.solve_ms = solve_ms

    @property
    def top_root(self) -> bytes:
        return self.commitments.top_root()

    @property
    def digest(self) -> bytes:
        return commitment_digest(self.seed, self.top_root, self.gpu_uuid, self.gpu_serial)

    def open(self, cells: list[tuple[int, int]]) -> list[CellOpening]:
        """The openings of ``cells`` (the backend produces every row asked in one pass)."""
        wanted = sorted({(segment + 1, row) for segment, row in cells} | {(segment, row) for segment, row in cells
                                                                          if segment > 0})
        rows = self._rows_at(wanted)
        openings = []
        for segment, row in cells:
            start = None
            if segment > 0:
                start = self.commitments.proof(segment, row, rows[(segment, row)])
            end = self.commitments.proof(segment + 1, row, rows[(segment + 1, row)])
            plan_root, plan_path = None, ()
            if plan_root_checkpoint(segment) > 0:
                plan_root, plan_path = self.commitments.root_proof(plan_root_checkpoint(segment))
            openings.append(CellOpening(segment, row, start, end, plan_root, plan_path))
        return openings


class Solver(Protocol):
    name: str

    def solve(self, seed: bytes, shape: WorkShape, gpu_uuid: str, gpu_serial: str) -> Solution: ...


@dataclass
class NumpySolver:
    """The reference prover on the CPU. Keeps every checkpoint (small sizes only)."""

    name: str = "numpy"
    max_table_bytes: int = CPU_MAX_TABLE_BYTES

    def solve(self, seed: bytes, shape: WorkShape, gpu_uuid: str, gpu_serial: str) -> Solution:
        if shape.table_bytes > self.max_table_bytes:
            raise ConfigError(f"the numpy solver handles tables up to {self.max_table_bytes >> 20} MiB; this "
                              f"challenge needs {shape.table_bytes >> 20} MiB: install gpurent[gpu] and use CUDA")
        started = time.perf_counter()
        inputs = Inputs(seed, shape)
        table = self.build_table(inputs)
        commitments = Commitments(shape)
        states = [inputs.x0]
        roots = [initial_root(seed)]   # roots[j]: checkpoint j's root
        for segment in range(shape.segments):
            state = states[-1]
            plan = segment_lookups(seed, segment, roots[plan_root_checkpoint(segment)], shape.steps_per_segment,
                                   shape.lookups, shape.table_entries, shape.rows)
            for pairs in plan:
                state = full_step(inputs, state, table, pairs)
            state = self.after_segment(segment + 1, state)
            states.append(state)
            roots.append(commitments.add_checkpoint(inputs.sketch(state)))
        elapsed_ms = int((time.perf_counter() - started) * 1000)
        return Solution(seed, shape, commitments, lambda wanted: {(c, r): states[c][r].tobytes() for c, r in wanted},
                        inputs,
                        gpu_uuid, gpu_serial, elapsed_ms)

    def build_table(self, inputs: Inputs) -> list[np.ndarray]:
        return [inputs.table_entry(a) for a in range(inputs.shape.table_entries)]

    def after_segment(self, checkpoint: int, state: np.ndarray) -> np.ndarray:
        """Hook for fault-injecting subclasses in the tests; the honest solver changes nothing."""
        return state


def available_solvers() -> dict[str, Callable[[], Solver]]:
    """numpy always; cuda when torch with CUDA imports (gpurent[gpu])."""
    solvers: dict[str, Callable[[], Solver]] = {"numpy": NumpySolver}
    try:
        from oracle.proof.solver_torch import TorchSolver, cuda_available
    except ImportError:
        return solvers
    if cuda_available():
        solvers["cuda"] = TorchSolver
    return solvers
