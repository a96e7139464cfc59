"""Issue 10: GPU use by anything but the renter's container is in the signed telemetry, is not
billed and is a FOREIGN_PROCESS fault.

The agent stamps each sample with ``foreign_process_count`` (processes on that GPU outside the
renter's container at its latest attribution poll). These tests pin the wire form (present only
when not 0, signed like every other field), the node's stored form, and the metering rule.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from oracle.errors import BatchVerificationError
from oracle.metering import FaultKind, MeterState, MeterTerms, feed, new_state, totals
from oracle.metering.core import meter_samples
from oracle.metering.policy import DEFAULT_POLICY
from oracle.node.testing import AGENT_KEY, chain_batches
from oracle.telemetry.batches import TelemetryBatch, canonical_json
from oracle.telemetry.codec import decode_batch, encode_batch

from metering_builders import LIMIT_MW, LOAD_MW, T0_MS, every_second, gpu_info, steady

GPU = gpu_info()


def terms(**changes) -> MeterTerms:
    return MeterTerms(**{"gpu_count": 1, "power_limit_mw": LIMIT_MW, "start_ms": T0_MS, **changes})


def with_foreign(samples, seconds: range, count: int = 1):
    """``samples`` whose readings at these offsets (seconds from the first) show foreign use."""
    t0 = samples[0].t_ms
    return [dataclasses.replace(s, foreign_process_count=count) if (s.t_ms - t0) // 1000 in seconds else s
            for s in samples]


def busy(seconds: int = 120):
    return steady(every_second(seconds, LOAD_MW, 97))


# -- the wire: signed, canonical, strict ------------------------------------------------------

def test_foreign_process_count_is_signed_in_the_batch_and_survives_the_wire():
    clean = chain_batches(AGENT_KEY, 7, busy(3), gpus=(GPU,), samples_per_batch=8)[0]
    dirty = chain_batches(AGENT_KEY, 7, with_foreign(busy(3), range(1, 3), 2), gpus=(GPU,),
                          samples_per_batch=8)[0]
    assert dirty.batch_hash() != clean.batch_hash()  # the evidence is covered by the signature
    body = dirty.to_wire_bytes()
    assert body == canonical_json(dirty.to_wire())
    parsed = TelemetryBatch.from_wire_bytes(body)
    parsed.verify_signature()
    assert [s.foreign_process_count for s in parsed.samples] == [0, 2, 2, 0]
    assert parsed.batch_hash() == dirty.batch_hash()


def test_a_sample_without_foreign_use_keeps_its_old_wire_bytes():
    batch = chain_batches(AGENT_KEY, 7, busy(2), gpus=(GPU,), samples_per_batch=8)[0]
    assert b"foreign_process_count" not in batch.to_wire_bytes()
    assert all("foreign_process_count" not in s for s in batch.to_wire()["samples"])


def test_a_tampered_foreign_process_count_breaks_the_signature():
    dirty = chain_batches(AGENT_KEY, 7, with_foreign(busy(2), range(1, 2)), gpus=(GPU,), samples_per_batch=8)[0]
    wire = dirty.to_wire()
    del wire["samples"][1]["foreign_process_count"]  # the provider hides the evidence
    with pytest.raises(BatchVerificationError):
        TelemetryBatch.from_wire(wire).verify_signature(dirty.agent)


@pytest.mark.parametrize("foreign", [False, True])
def test_the_nodes_stored_form_keeps_the_foreign_process_count_exactly(foreign):
    samples = with_foreign(busy(5), range(2, 4), 3) if foreign else busy(5)
    batch = chain_batches(AGENT_KEY, 7, samples, gpus=(GPU,), samples_per_batch=8)[0]
    stored = encode_batch(batch)
    assert stored[0] == (2 if foreign else 1)  # batches without foreign use keep version 1's bytes
    back = decode_batch(stored)
    assert back == batch and back.batch_hash() == batch.batch_hash()
    assert back.to_wire_bytes() == batch.to_wire_bytes()


# -- metering: unbilled, and a fault per window --------------------------------------------------

def test_foreign_use_is_unbilled_and_a_foreign_process_fault():
    clean = meter_samples(busy(), [GPU], terms=terms())
    dirty = meter_samples(with_foreign(busy(), range(30, 40)), [GPU], terms=terms())
    # Ten 1-s intervals closed by the ten foreign samples: neither time, busy time nor energy.
    assert clean.available_gpu_milliseconds - dirty.available_gpu_milliseconds == 10_000
    assert clean.energy_millijoules - dirty.energy_millijoules == 10 * LOAD_MW
    assert clean.busy_gpu_milliseconds - dirty.busy_gpu_milliseconds == 10 * 970
    assert clean.faults == ()
    assert [f.kind for f in dirty.faults] == [FaultKind.FOREIGN_PROCESS]
    fault = dirty.faults[0]
    assert fault.start_ms == T0_MS + 29_000 and fault.end_ms == T0_MS + 30_000
    assert fault.slashable and "outside the renter's container" in fault.detail
    assert dirty.fault_flags == 1 << FaultKind.FOREIGN_PROCESS


def test_foreign_use_is_one_fault_per_kind_and_window_and_not_downtime_too():
    # 60-s windows, a 95 % SLA: 20 s of foreign use in window 0 and 5 s in window 1.
    t = terms(window_s=60, min_uptime_bps=9500)
    dirty = meter_samples(with_foreign(busy(150), [*range(10, 30), *range(70, 75)]), [GPU], terms=t)
    foreign = [f for f in dirty.faults if f.kind == FaultKind.FOREIGN_PROCESS]
    assert [(f.end_ms - T0_MS) // 60_000 for f in foreign] == [0, 1]
    assert FaultKind.DOWNTIME not in {f.kind for f in dirty.faults}  # the GPU was up: one fault, not two


def test_foreign_use_metered_in_any_chunking_gives_the_same_totals():
    samples = with_foreign(busy(), range(50, 65), 2)
    whole = meter_samples(samples, [GPU], terms=terms())
    state = new_state([GPU], terms())
    for start in range(0, len(samples), 7):
        state = MeterState.from_bytes(feed(state, terms(), DEFAULT_POLICY, samples[start:start + 7]).to_bytes())
    assert totals(state, terms()) == whole


def test_a_checkpoint_from_before_foreign_process_count_is_read_with_a_zero():
    samples = busy(10)
    state = feed(new_state([GPU], terms()), terms(), DEFAULT_POLICY, samples[:5])
    old = json.loads(state.to_bytes())
    old["version"] = 1
    for gpu in old["gpus"].values():
        gpu["last"] = gpu["last"][:8]  # version 1 had eight sample fields
    upgraded = MeterState.from_bytes(json.dumps(old).encode())
    feed(upgraded, terms(), DEFAULT_POLICY, samples[4:])  # the duplicate of the last one counts once
    assert totals(upgraded, terms()) == meter_samples(samples, [GPU], terms=terms())
