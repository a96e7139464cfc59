"""A real node's metering path (Attestor on real SQLite) for node-level metering tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

from oracle.node.attestor import Attestor
from oracle.node.rentals import InMemoryRentalRegistry, Rental
from oracle.node.storage import NodeStorage
from oracle.node.testing import AGENT_KEY, H100, NODE_KEY, chain_batches, trace_samples
from oracle.telemetry.batches import address_of
from oracle.telemetry.samples import GpuInfo, Sample
from oracle.traces import TRACE_A

RENTAL = 7
MARKET = "0x" + "42" * 20
H100_MODEL = "NVIDIA H100 80GB HBM3"


def rental(start_ms: int, gpu_count: int = 1, **terms) -> Rental:
    return Rental(RENTAL, address_of(AGENT_KEY), gpu_count, "test", 400, start_ms, gpu_model=H100_MODEL, **terms)


def make_node(tmp_path: Path, rental: Rental, now_ms: int, storage: NodeStorage | None = None,
              **kwargs) -> Attestor:
    return Attestor(
        storage=storage or NodeStorage(tmp_path / "node.sqlite3"),
        registry=InMemoryRentalRegistry([rental]),
        node_key=NODE_KEY, chain_id=31337, market_address=MARKET, signer_set_version=1,
        clock=lambda: now_ms, **kwargs,
    )


def ingest(node: Attestor, samples: Sequence[Sample], gpus: Sequence[GpuInfo] = (H100,),
           per_batch: int = 40) -> int:
    """Ingest ``samples`` as signed batches; the number of batches."""
    batches = chain_batches(AGENT_KEY, RENTAL, samples, gpus=gpus, samples_per_batch=per_batch)
    for batch in batches:
        assert node.ingest(batch.to_wire_bytes()).status == "accepted"
    return len(batches)


def one_hz(path: Path = TRACE_A) -> list[Sample]:
    """The agent's default rate: every tenth row of a 10 Hz trace."""
    return trace_samples(path)[::10]


def with_power(samples: Sequence[Sample], powers_mw: Sequence[int], util: int | None = None) -> list[Sample]:
    """``samples`` drawing ``powers_mw`` instead, the energy counter rebuilt to agree with it."""
    out = [dataclasses.replace(samples[0], power_mw=powers_mw[0],
                               util_gpu_pct=samples[0].util_gpu_pct if util is None else util)]
    for prev, cur, power in zip(samples, samples[1:], powers_mw[1:]):
        energy = out[-1].energy_mj + power * (cur.t_ms - prev.t_ms) // 1000
        out.append(dataclasses.replace(cur, power_mw=power, energy_mj=energy,
                                       util_gpu_pct=cur.util_gpu_pct if util is None else util))
    return out


def slashable_faults(node: Attestor) -> list:
    return [outcome.signed.report for outcome in node.fault_reports(RENTAL) if outcome.signed]
