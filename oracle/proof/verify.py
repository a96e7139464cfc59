"""The node's check of one challenge's openings: O(k s (1 + l) n^2) multiply-adds, no table. Pure.

For each opened cell (segment c, row r) the verifier checks that both checkpoint rows belong to
the commitment (sketch of the row = its committed entry, leaf and paths up to the top root),
then recomputes row r through the s steps of segment c from the start row, regenerating the
table rows it reads, and compares with the committed end row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oracle.proof import merkle
from oracle.proof.answer import CellOpening, CheckpointProof
from oracle.proof.params import WorkShape
from oracle.proof.seeds import initial_root, plan_root_checkpoint, segment_lookups
from oracle.proof.work import Inputs, leaf_bytes, replay_rows


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    reason: str          # "ok" or why not
    cells_checked: int


def _check_proof(inputs: Inputs, top_root: bytes, proof: CheckpointProof, row: int) -> str | None:
    shape = inputs.shape
    if not 1 <= proof.checkpoint <= shape.segments:
        return f"checkpoint {proof.checkpoint} out of range"
    if len(proof.row) != shape.n or len(proof.group_sketch) != shape.group_rows * shape.sketch_width * 4:
        return f"checkpoint {proof.checkpoint} row {row}: wrong sizes"
    if not merkle.verify(top_root, merkle.leaf_hash(proof.root), proof.checkpoint - 1, proof.top_path,
                         shape.segments):
        return f"checkpoint {proof.checkpoint}: root not under the committed top root"
    group, within = divmod(row, shape.group_rows)
    sketch = np.frombuffer(proof.group_sketch, dtype="<i4").reshape(shape.group_rows, shape.sketch_width)
    row_values = np.frombuffer(proof.row, dtype=np.int8).reshape(1, shape.n)
    if not np.array_equal(inputs.sketch(row_values)[0], sketch[within]):
        return f"checkpoint {proof.checkpoint} row {row}: row does not match its committed sketch"
    leaf = merkle.leaf_hash(leaf_bytes(proof.checkpoint, group, sketch))
    if not merkle.verify(proof.root, leaf, group, proof.leaf_path, shape.leaves_per_checkpoint):
        return f"checkpoint {proof.checkpoint} row {row}: leaf not under the checkpoint root"
    return None


def verify_openings(seed: bytes, shape: WorkShape, top_root: bytes, cells: list[tuple[int, int]],
                    openings: list[CellOpening], inputs: Inputs | None = None) -> Verification:
    """Check ``openings`` against the cells the nodes asked for (in order)."""
    inputs = inputs or Inputs(seed, shape)
    if len(openings) != len(cells):
        return Verification(False, f"{len(openings)} openings for {len(cells)} cells", 0)
    starts, ends, plans = [], [], []
    for index, ((segment, row), opening) in enumerate(zip(cells, openings)):
        if (opening.segment, opening.row) != (segment, row):
            return Verification(False, f"opening {index} answers cell {(opening.segment, opening.row)}, "
                                       f"asked {(segment, row)}", index)
        if opening.end.checkpoint != segment + 1:
            return Verification(False, f"opening {index}: end is checkpoint {opening.end.checkpoint}", index)
        for proof in ([opening.start] if segment > 0 else []) + [opening.end]:
            if proof is None:
                return Verification(False, f"opening {index}: segment {segment} needs its start row", index)
            problem = _check_proof(inputs, top_root, proof, row)
            if problem:
                return Verification(False, problem, index)
        if segment == 0:
            start_row = inputs.x0[row]
        else:
            if opening.start.checkpoint != segment:
                return Verification(False, f"opening {index}: start is checkpoint {opening.start.checkpoint}", index)
            start_row = np.frombuffer(opening.start.row, dtype=np.int8)
        plan_checkpoint = plan_root_checkpoint(segment)
        if plan_checkpoint == 0:
            plan_root = initial_root(seed)
        elif opening.plan_root is None or not merkle.verify(
                top_root, merkle.leaf_hash(opening.plan_root), plan_checkpoint - 1, opening.plan_top_path,
                shape.segments):
            return Verification(False, f"opening {index}: root of checkpoint {plan_checkpoint} not proven", index)
        else:
            plan_root = opening.plan_root
        starts.append(start_row)
        ends.append(np.frombuffer(opening.end.row, dtype=np.int8))
        plans.append(segment_lookups(seed, segment, plan_root, shape.steps_per_segment, shape.lookups,
                                     shape.table_entries, shape.rows))
    recomputed = replay_rows(inputs, np.stack(starts), [row for _, row in cells], plans)
    for index, (end_row, (segment, row)) in enumerate(zip(ends, cells)):
        if not np.array_equal(recomputed[index], end_row):
            return Verification(False, f"cell (segment {segment}, row {row}): the committed row is not the "
                                       "product of the committed start row", index)
    return Verification(True, "ok", len(cells))
