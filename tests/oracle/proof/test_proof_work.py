"""The challenge computation, its commitments and the verifier, on the CPU path."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from oracle.errors import ConfigError
from oracle.proof import merkle
from oracle.proof.answer import CellOpening
from oracle.proof.params import DEV_SHAPE, WorkShape, profile_for
from oracle.proof.seeds import opening_cells
from oracle.proof.solver import NumpySolver
from oracle.proof.verify import verify_openings
from oracle.proof.work import Inputs, int_product, quantize

from tests.oracle.proof.cheaters import BEACON_AFTER_COMMIT, judge_solution

SEED = bytes(range(32))


def _solve(seed: bytes = SEED, shape: WorkShape = DEV_SHAPE):
    return NumpySolver().solve(seed, shape, "GPU-test-uuid", "1650123456789")


def test_int8_products_are_exact_at_the_largest_allowed_dimension():
    n = 2048
    extreme = np.full((2, n), -128, dtype=np.int8)
    product = int_product(extreme, np.full((n, 8), -128, dtype=np.int8))
    assert product[0, 0] == n * 128 * 128  # 33,554,432: exact in float64 and in int32
    assert product.dtype == np.int64


def test_quantize_takes_bits_8_to_15_as_int8():
    values = np.array([0, 255, 256, 0x7F00, 0x8000, -1, -256, 0x12345678], dtype=np.int64)
    assert quantize(values).tolist() == [0, 0, 1, 127, -128, -1, -1, 0x56]


def test_the_seeded_inputs_are_reproducible_and_seed_dependent():
    a, b = Inputs(SEED, DEV_SHAPE), Inputs(SEED, DEV_SHAPE)
    assert np.array_equal(a.b, b.b) and np.array_equal(a.x0, b.x0) and np.array_equal(a.perm(3), b.perm(3))
    other = Inputs(b"\x01" * 32, DEV_SHAPE)
    assert not np.array_equal(a.b, other.b)
    assert sorted(a.perm(3).tolist()) == list(range(DEV_SHAPE.n))


def test_two_solves_of_one_seed_commit_to_the_same_root_and_other_seeds_differ():
    assert _solve().top_root == _solve().top_root
    assert _solve().top_root != _solve(b"\x02" * 32).top_root


def test_an_honest_answer_verifies():
    assert judge_solution(_solve(), SEED, DEV_SHAPE).ok


def test_honest_provers_are_never_rejected_over_many_challenges():
    """Zero false rejects: 200 challenges with distinct seeds and distinct opening draws."""
    rejected = []
    for i in range(200):
        seed = merkle.keccak(b"honest" + i.to_bytes(4, "big"))
        verdict = judge_solution(_solve(seed), seed, DEV_SHAPE, beacon=merkle.keccak(b"beacon" + seed))
        if not verdict.ok:
            rejected.append((i, verdict.reason))
    assert rejected == []


def _opened(solution, seed=SEED):
    cells = opening_cells(seed, solution.digest, BEACON_AFTER_COMMIT, DEV_SHAPE.opened, DEV_SHAPE.segments,
                          DEV_SHAPE.rows)
    return cells, solution.open(cells)


def test_a_flipped_byte_in_an_opened_row_is_rejected():
    solution = _solve()
    cells, openings = _opened(solution)
    end = openings[0].end
    tampered_row = bytes([end.row[0] ^ 1]) + end.row[1:]
    openings[0] = dataclasses.replace(openings[0], end=dataclasses.replace(end, row=tampered_row))
    verdict = verify_openings(SEED, DEV_SHAPE, solution.top_root, cells, openings)
    assert not verdict.ok and "sketch" in verdict.reason


def test_openings_of_other_cells_than_asked_are_rejected():
    solution = _solve()
    cells, _ = _opened(solution)
    other = [((c + 1) % DEV_SHAPE.segments, r) for c, r in cells]
    verdict = verify_openings(SEED, DEV_SHAPE, solution.top_root, cells, solution.open(other))
    assert not verdict.ok and "asked" in verdict.reason


def test_openings_against_another_top_root_are_rejected():
    solution = _solve()
    cells, openings = _opened(solution)
    verdict = verify_openings(SEED, DEV_SHAPE, b"\x77" * 32, cells, openings)
    assert not verdict.ok and "top root" in verdict.reason


def test_a_missing_opening_is_rejected():
    solution = _solve()
    cells, openings = _opened(solution)
    assert not verify_openings(SEED, DEV_SHAPE, solution.top_root, cells, openings[:-1]).ok


def test_openings_survive_their_wire_format():
    solution = _solve()
    cells, openings = _opened(solution)
    again = [CellOpening.from_wire(o.to_wire()) for o in openings]
    assert again == openings
    assert verify_openings(SEED, DEV_SHAPE, solution.top_root, cells, again).ok


def test_the_numpy_solver_refuses_production_sizes():
    with pytest.raises(ConfigError, match="gpurent\\[gpu\\]"):
        NumpySolver().solve(SEED, profile_for("NVIDIA H100 80GB HBM3").shape, "GPU-x", "1")


def test_merkle_proofs_verify_only_at_their_index():
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(5)]
    tree = merkle.levels(leaves)
    root = tree[-1][0]
    for i, leaf in enumerate(leaves):
        assert merkle.verify(root, leaf, i, merkle.proof(tree, i), 5)
        assert not merkle.verify(root, leaf, (i + 1) % 5, merkle.proof(tree, i), 5)
    assert not merkle.verify(root, merkle.leaf_hash(b"x"), 0, merkle.proof(tree, 0), 5)


def test_shapes_refuse_dimensions_that_could_overflow_int32_or_break_tensor_core_tiles():
    with pytest.raises(ConfigError):
        dataclasses.replace(DEV_SHAPE, n=2**17)
    with pytest.raises(ConfigError):
        dataclasses.replace(DEV_SHAPE, n=60)
