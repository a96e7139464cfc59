"""Issue 8, "working set sized to the listed GPU memory": the start challenge is the memory proof;
periodic challenges run beside the renter's job with a 10 % table and catch slower cards only.
These tests pin exactly what that leaves open, as docs/protocol.md ("Not proven") states it."""

from __future__ import annotations

from oracle.gpu_models import gpu_model
from oracle.proof.params import PERFORMANCE, profile_for, uncaught_periodic_swaps

H100, H200 = "NVIDIA H100 80GB HBM3", "NVIDIA H200"
A100, L40S, RTX4090 = "NVIDIA A100-SXM4-80GB", "NVIDIA L40S", "NVIDIA GeForce RTX 4090"


def test_the_start_table_of_every_listed_model_fills_85_percent_of_its_memory():
    for perf in PERFORMANCE:
        profile = profile_for(perf.model)
        memory = gpu_model(perf.model).memory_mib * 2**20
        assert 0.84 * memory <= profile.start.shape.table_bytes <= 0.85 * memory
        assert profile.periodic.shape.table_bytes <= 0.10 * memory


def test_periodic_challenges_leave_exactly_the_documented_swaps_uncaught():
    assert sorted(uncaught_periodic_swaps()) == sorted([
        (H200, H100), (A100, H100), (A100, L40S), (A100, RTX4090), (L40S, RTX4090)])


def test_no_card_with_less_memory_passes_an_h100_rentals_periodic_challenges():
    assert [card for listed, card in uncaught_periodic_swaps() if listed == H100] == []
