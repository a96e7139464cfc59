"""The challenge computation on numpy: seeded matrices, one step, row replay, sketches. Pure.

Everything is exact integer arithmetic. int8 products are computed in float64 (every partial
sum of int8 x int8 products of length n <= 2**17 is an integer below 2**53, so BLAS is exact
whatever its summation order) and rounded back to integers; the GPU path computes the same
numbers with int8 tensor cores and int32 accumulation (oracle/proof/solver_torch.py).

State step (docs/protocol.md, "Proof of GPU"):
    U = q(Z . B);  Z' = U xor V[a_1] rolled by o_1 xor ... xor V[a_l] rolled by o_l
    V[a] = q(X0[:, perm_a] . B)       (table entry a)
    q(x) = bits 8..15 of the int32 x, as int8
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from oracle.proof.params import WorkShape
from oracle.proof.seeds import generator_key


def seeded_int8(seed: bytes, what: bytes, shape: tuple[int, ...], index: int = 0) -> np.ndarray:
    """int8 array filled from the Philox4x64-10 raw stream keyed from (seed, what, index)."""
    count = int(np.prod(shape))
    raw = np.random.Philox(key=np.array(generator_key(seed, what, index), dtype=np.uint64)).random_raw((count + 7) // 8)
    return raw.astype("<u8").view(np.uint8)[:count].view(np.int8).reshape(shape)


def permutation(seed: bytes, entry: int, n: int) -> np.ndarray:
    """perm_a: the column permutation of table entry ``entry`` (stable argsort of 64-bit draws)."""
    raw = np.random.Philox(key=np.array(generator_key(seed, b"P", entry), dtype=np.uint64)).random_raw(n)
    return np.argsort(raw, kind="stable")


def quantize(product: np.ndarray) -> np.ndarray:
    """q: bits 8..15 of each exact integer, as int8."""
    return ((product.astype(np.int64) >> 8) & 0xFF).astype(np.uint8).view(np.int8)


def int_product(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The exact integer product of two int8 matrices (int64)."""
    return np.rint(left.astype(np.float64) @ right.astype(np.float64)).astype(np.int64)


class Inputs:
    """The seeded matrices of one challenge: B (n x n), X0 (rows x n), H (n x d)."""

    def __init__(self, seed: bytes, shape: WorkShape) -> None:
        self.seed = seed
        self.shape = shape
        self.b = seeded_int8(seed, b"B", (shape.n, shape.n))
        self.x0 = seeded_int8(seed, b"X0", (shape.rows, shape.n))
        self.h = seeded_int8(seed, b"H", (shape.n, shape.sketch_width))
        self._b64 = self.b.astype(np.float64)
        self._perm = lru_cache(maxsize=4096)(lambda entry: permutation(seed, entry, shape.n))

    def perm(self, entry: int) -> np.ndarray:
        return self._perm(entry)

    def step_product(self, rows: np.ndarray) -> np.ndarray:
        """q(rows . B) for any number of int8 rows."""
        return quantize(np.rint(rows.astype(np.float64) @ self._b64))

    def table_entry(self, entry: int) -> np.ndarray:
        return self.step_product(self.x0[:, self.perm(entry)])

    def sketch(self, rows: np.ndarray) -> np.ndarray:
        """rows . H as int32 (exact: |sum| < n * 2**14 < 2**31)."""
        return int_product(rows, self.h).astype(np.int32)


def full_step(inputs: Inputs, state: np.ndarray, table: list[np.ndarray], pairs: list[tuple[int, int]]) -> np.ndarray:
    out = inputs.step_product(state)
    for entry, offset in pairs:
        out ^= np.roll(table[entry], -offset, axis=0)
    return out


def replay_rows(inputs: Inputs, start_rows: np.ndarray, row_ids: list[int],
                plans: list[list[list[tuple[int, int]]]]) -> np.ndarray:
    """Rows ``row_ids[i]`` of a segment's end state from the same rows of its start state, where
    row i follows ``plans[i]`` (its segment's lookups; every plan has the same number of steps).

    A state row depends only on the same row of the previous state and on table rows, so a
    verifier recomputes an opened row with s x (1 + l) row products and no table. All rows go
    through each step together: one (k (1 + l)) x n x n product per step.
    """
    rows = inputs.shape.rows
    z = start_rows.copy()
    count = len(row_ids)
    for step in range(len(plans[0]) if plans else 0):
        wanted = [(entry, (r + offset) % rows) for r, plan in zip(row_ids, plans) for entry, offset in plan[step]]
        lookups = len(plans[0][step])
        gathered = np.concatenate([z, np.stack([inputs.x0[row, inputs.perm(entry)] for entry, row in wanted])])
        products = inputs.step_product(gathered)
        out = products[:count].copy()
        table_rows = products[count:].reshape(count, lookups, -1)
        for j in range(lookups):
            out ^= table_rows[:, j, :]
        z = out
    return z


def leaf_bytes(checkpoint: int, group: int, group_sketch: np.ndarray) -> bytes:
    return checkpoint.to_bytes(4, "big") + group.to_bytes(4, "big") + group_sketch.astype("<i4").tobytes()
