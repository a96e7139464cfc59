"""The prover's answer: a commitment, then openings of the cells the nodes pick. Wire format + Merkle
bookkeeping shared by every solver backend. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from oracle.proof import merkle
from oracle.proof.params import WorkShape
from oracle.proof.work import leaf_bytes


@dataclass(frozen=True, slots=True)
class CheckpointProof:
    """One row of one committed checkpoint, with everything that ties it to the top root."""

    checkpoint: int          # 1..C
    root: bytes              # the checkpoint's Merkle root
    top_path: tuple[bytes, ...]
    row: bytes               # the n int8 entries of the row
    group_sketch: bytes      # int32 LE sketches of the row's group (g x d)
    leaf_path: tuple[bytes, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "root": "0x" + self.root.hex(),
                "top_path": ["0x" + p.hex() for p in self.top_path], "row": "0x" + self.row.hex(),
                "group_sketch": "0x" + self.group_sketch.hex(), "leaf_path": ["0x" + p.hex() for p in self.leaf_path]}

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> "CheckpointProof":
        return cls(int(wire["checkpoint"]), _hex(wire["root"], 32), tuple(_hex(p, 32) for p in wire["top_path"]),
                   _hex(wire["row"]), _hex(wire["group_sketch"]), tuple(_hex(p, 32) for p in wire["leaf_path"]))


@dataclass(frozen=True, slots=True)
class CellOpening:
    segment: int                      # the segment checked: checkpoint `segment` -> `segment + 1`
    row: int
    start: CheckpointProof | None     # None for segment 0 (the seeded initial state)
    end: CheckpointProof
    plan_root: bytes | None = None    # segment >= 2: root of checkpoint segment - 1, which drew its lookups
    plan_top_path: tuple[bytes, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return {"segment": self.segment, "row": self.row,
                "start": None if self.start is None else self.start.to_wire(), "end": self.end.to_wire(),
                "plan_root": None if self.plan_root is None else "0x" + self.plan_root.hex(),
                "plan_top_path": ["0x" + p.hex() for p in self.plan_top_path]}

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> "CellOpening":
        start, plan_root = wire.get("start"), wire.get("plan_root")
        return cls(int(wire["segment"]), int(wire["row"]),
                   None if start is None else CheckpointProof.from_wire(start), CheckpointProof.from_wire(wire["end"]),
                   None if plan_root is None else _hex(plan_root, 32),
                   tuple(_hex(p, 32) for p in wire.get("plan_top_path", [])))


def _hex(value: str, size: int | None = None) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError("expected 0x-prefixed hex")
    raw = bytes.fromhex(value[2:])
    if size is not None and len(raw) != size:
        raise ValueError(f"expected {size} bytes, got {len(raw)}")
    return raw


class Commitments:
    """The prover's Merkle trees: one per checkpoint (over group sketches) and one over their roots."""

    def __init__(self, shape: WorkShape) -> None:
        self.shape = shape
        self.sketches: list[np.ndarray] = []      # per checkpoint 1..C: rows x d int32
        self.trees: list[list[list[bytes]]] = []
        self.top: list[list[bytes]] | None = None

    def add_checkpoint(self, sketch: np.ndarray) -> bytes:
        """Record checkpoint ``len(self.sketches) + 1``'s sketch; its root."""
        checkpoint = len(self.sketches) + 1
        tree = self._tree(checkpoint, sketch)
        self.sketches.append(sketch)
        self.trees.append(tree)
        return tree[-1][0]

    def add_checkpoint_at(self, checkpoint: int, sketch: np.ndarray) -> bytes:
        """The root checkpoint ``checkpoint`` would have with ``sketch`` (nothing recorded)."""
        return self._tree(checkpoint, sketch)[-1][0]

    def _tree(self, checkpoint: int, sketch: np.ndarray) -> list[list[bytes]]:
        g = self.shape.group_rows
        return merkle.levels([merkle.leaf_hash(leaf_bytes(checkpoint, j, sketch[j * g:(j + 1) * g]))
                              for j in range(self.shape.leaves_per_checkpoint)])

    @property
    def roots(self) -> list[bytes]:
        return [tree[-1][0] for tree in self.trees]

    def top_root(self) -> bytes:
        if self.top is None:
            self.top = merkle.levels([merkle.leaf_hash(r) for r in self.roots])
        return self.top[-1][0]

    def root_proof(self, checkpoint: int) -> tuple[bytes, tuple[bytes, ...]]:
        """A checkpoint's root and its path under the top root."""
        self.top_root()
        return self.roots[checkpoint - 1], tuple(merkle.proof(self.top, checkpoint - 1))

    def proof(self, checkpoint: int, row: int, row_bytes: bytes) -> CheckpointProof:
        self.top_root()
        g = self.shape.group_rows
        group = row // g
        sketch = self.sketches[checkpoint - 1][group * g:(group + 1) * g]
        return CheckpointProof(checkpoint, self.roots[checkpoint - 1], tuple(merkle.proof(self.top, checkpoint - 1)),
                               row_bytes, sketch.astype("<i4").tobytes(),
                               tuple(merkle.proof(self.trees[checkpoint - 1], group)))
