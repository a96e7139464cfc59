"""Issue 9: the core is a checkpointable fold, so any chunking meters like all at once."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from oracle.metering import DEFAULT_POLICY, MeterState, MeterTerms, feed, meter_samples, new_state, totals
from oracle.telemetry.samples import GpuInfo

from metering_builders import LOAD_MW, T0_MS, every_second, gpu_info, steady
from test_metering_properties import PROPERTY_SETTINGS, telemetry


def terms_for(gpus, start_ms: int, **changes) -> MeterTerms:
    base = {"gpu_count": len(gpus) + 1, "power_limit_mw": min(g.power_limit_mw for g in gpus),
            "start_ms": start_ms, "max_gap_ms": 20_000, "window_s": 60, "grid_intensity_g_per_kwh": 481}
    return MeterTerms(**{**base, **changes})


def chunked(gpus, terms, ordered, cuts) -> MeterState:
    """Meter ``ordered`` in the chunks between ``cuts``, checkpointing (to bytes and back) in between."""
    blob = None
    for a, b in zip([0, *cuts], [*cuts, len(ordered)]):
        state = new_state(gpus, terms) if blob is None else MeterState.from_bytes(blob)
        feed(state, terms, DEFAULT_POLICY, ordered[a:b])
        blob = state.to_bytes()
    return MeterState.from_bytes(blob)


@PROPERTY_SETTINGS
@given(telemetry(max_gpus=3, max_samples=30, unique_times=False), st.randoms(), st.integers(0, 8),
       st.integers(-5000, 5000), st.booleans())
def test_any_chunking_with_checkpoints_gives_the_same_totals_and_faults_as_metering_at_once(
    generated, rnd, cut_count, start_shift_ms, ended
):
    """Whatever the chunks (a report after any batch) and however often the state goes through
    its serialized checkpoint, the totals, faults and flags equal one pass over all samples;
    the rental one GPU larger than the telemetry (GPU_MISSING), its start and end cutting
    samples off, windows of 60 s (SLA and fault aggregation), conflicting duplicates included."""
    gpus, samples = generated
    ordered = sorted(samples, key=lambda s: (s.t_ms, s.gpu))
    end_ms = ordered[len(ordered) // 2].t_ms if ended else None
    terms = terms_for(gpus, T0_MS + start_shift_ms, end_ms=end_ms)
    at_once = feed(new_state(gpus, terms), terms, DEFAULT_POLICY, ordered)
    cuts = sorted(rnd.randint(0, len(ordered)) for _ in range(cut_count))
    in_chunks = chunked(gpus, terms, ordered, cuts)
    assert in_chunks == at_once
    assert in_chunks.to_bytes() == at_once.to_bytes()
    assert totals(in_chunks, terms) == totals(at_once, terms)
    report = totals(at_once, terms)
    elapsed_s = max(0, report.period_end_ms // 1000 - terms.start_ms // 1000)
    assert report.available_gpu_seconds <= terms.gpu_count * elapsed_s  # the on-chain bounds
    assert report.energy_millijoules <= terms.gpu_count * terms.power_limit_mw * elapsed_s


@PROPERTY_SETTINGS
@given(telemetry(max_gpus=2, max_samples=30))
def test_totals_never_decrease_and_faults_only_grow_at_the_end_sample_by_sample(generated):
    gpus, samples = generated
    ordered = sorted(samples, key=lambda s: (s.t_ms, s.gpu))
    terms = terms_for(gpus, T0_MS)
    state = new_state(gpus, terms)
    previous = totals(state, terms)
    for sample in ordered:
        feed(state, terms, DEFAULT_POLICY, [sample])
        now = totals(state, terms)
        for name in ("available_gpu_milliseconds", "busy_gpu_milliseconds", "energy_millijoules",
                     "carbon_milligrams", "period_end_ms", "sample_count", "excluded_sample_count"):
            assert getattr(now, name) >= getattr(previous, name), name
        assert previous.fault_flags & ~now.fault_flags == 0
        assert now.faults[:len(previous.faults)] == previous.faults
        previous = now


def test_meter_state_checkpoint_is_canonical_bytes():
    gpus = [gpu_info(0), gpu_info(1)]
    terms = terms_for(gpus, T0_MS)
    samples = steady(every_second(30, LOAD_MW, 99), gpu=0) + steady(every_second(30, 800_000, 99), gpu=1)
    state = feed(new_state(gpus, terms), terms, DEFAULT_POLICY, sorted(samples, key=lambda s: (s.t_ms, s.gpu)))
    blob = state.to_bytes()
    assert MeterState.from_bytes(blob).to_bytes() == blob
    assert blob.isascii() and b"NaN" not in blob
    assert state.faults  # over-limit power on GPU 1 is in the checkpoint


def test_meter_state_holds_no_sample_history():
    """Memory bounded per rental: an hour of 1 Hz telemetry leaves a state of the same size as a
    minute of it (the last sample per GPU, running totals, open runs)."""
    gpus = [GpuInfo(0, "GPU-a", "x", 700_000)]
    terms = terms_for(gpus, T0_MS, gpu_count=1)
    minute = feed(new_state(gpus, terms), terms, DEFAULT_POLICY, steady(every_second(60, LOAD_MW, 99)))
    hour = feed(new_state(gpus, terms), terms, DEFAULT_POLICY, steady(every_second(3600, LOAD_MW, 99)))
    assert abs(len(hour.to_bytes()) - len(minute.to_bytes())) < 64


def test_meter_samples_equals_feeding_the_time_ordered_samples(trace_a_samples, h100):
    terms = MeterTerms(gpu_count=1, power_limit_mw=700_000, start_ms=trace_a_samples[0].t_ms)
    fed = feed(new_state([h100], terms), terms, DEFAULT_POLICY, trace_a_samples)
    assert totals(fed, terms) == meter_samples(list(reversed(trace_a_samples)), [h100], terms=terms)


def test_feeding_checked_value_tuples_meters_exactly_like_feeding_samples(trace_a_samples, h100):
    """The node's report path feeds stored value tuples (checked on ingest) without Sample objects."""
    from oracle.metering.core import feed_checked_values
    from oracle.telemetry.samples import SAMPLE_FIELDS

    terms = MeterTerms(gpu_count=1, power_limit_mw=700_000, start_ms=trace_a_samples[0].t_ms)
    values = [tuple(getattr(s, name) for name in SAMPLE_FIELDS) for s in trace_a_samples]
    by_samples = feed(new_state([h100], terms), terms, DEFAULT_POLICY, trace_a_samples)
    by_values = feed_checked_values(new_state([h100], terms), terms, DEFAULT_POLICY, values)
    assert by_values.to_bytes() == by_samples.to_bytes()
    assert totals(by_values, terms) == totals(by_samples, terms)
