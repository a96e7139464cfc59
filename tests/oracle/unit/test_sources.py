"""Telemetry sources: replay of the real H100 trace, NVML against a fake pynvml, simulation."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from oracle.errors import TelemetryError
from oracle.telemetry.samples import read_trace_csv
from oracle.telemetry.sources import (
    MultiSource,
    NvmlSource,
    ReplaySource,
    SimulatedSource,
    parse_load_script,
)
from oracle.telemetry.sources.replay import backdate_ms
from shared_traces import TRACE_A



class FakeClock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def replay_all(source: ReplaySource, clock: FakeClock, step_ms: int) -> list:
    out = []
    while not source.finished:
        got = source.read()
        assert all(s.t_ms <= clock.ms for s in got), "a replayed sample is in the future"
        out.extend(got)
        clock.ms += step_ms
    return out


# -- replay ----------------------------------------------------------------------------------


def test_replay_at_speed_50_keeps_every_integer_and_the_spacing_and_no_future_time():
    trace = read_trace_csv(TRACE_A)
    clock = FakeClock(1_900_000_000_000)
    start = clock.ms
    source = ReplaySource(TRACE_A, speed=50, clock_ms=clock)
    replayed = replay_all(source, clock, step_ms=7)

    assert len(replayed) == len(trace) == 854
    for original, copy in zip(trace, replayed):
        assert (copy.gpu, copy.energy_mj, copy.power_mw, copy.util_gpu_pct, copy.util_mem_pct,
                copy.mem_used_mib, copy.temp_c) == (
            original.gpu, original.energy_mj, original.power_mw, original.util_gpu_pct,
            original.util_mem_pct, original.mem_used_mib, original.temp_c)
    # Same spacing as the file: metering sees 85.3 s of GPU time, not 1.7 s.
    offsets = {c.t_ms - o.t_ms for o, c in zip(trace, replayed)}
    assert len(offsets) == 1
    assert replayed[-1].t_ms - replayed[0].t_ms == trace[-1].t_ms - trace[0].t_ms == 85_300
    # The replay took D/50 of wall time and the first sample is back-dated by D - D/50.
    assert clock.ms - start <= 85_300 // 50 + 7 * 2
    assert replayed[0].t_ms == start - backdate_ms(85_300, 50) == start - 83_594
    assert replayed[-1].t_ms <= clock.ms


def test_replay_at_speed_1_is_live_and_not_backdated():
    clock = FakeClock(1_900_000_000_000)
    source = ReplaySource(TRACE_A, speed=1, clock_ms=clock)
    first = source.read()
    assert [s.t_ms for s in first] == [clock.ms]
    clock.ms += 250
    assert [s.t_ms - first[0].t_ms for s in source.read()] == [100, 200]


def test_replay_slower_than_real_time_never_stamps_the_future():
    clock = FakeClock(1_900_000_000_000)
    source = ReplaySource(TRACE_A, speed=0.5, clock_ms=clock)
    got = []
    for _ in range(100):  # 10 s of wall time replay 5 s of trace
        got.extend(source.read())
        assert all(s.t_ms <= clock.ms for s in got)
        clock.ms += 100
    assert 48 <= len(got) <= 51
    assert got[-1].t_ms - got[0].t_ms <= 5_000


def test_replay_not_before_keeps_samples_after_the_rental_start_and_never_in_the_future():
    trace = read_trace_csv(TRACE_A)
    clock = FakeClock(1_900_000_000_000)
    rental_start = clock.ms - 40_000  # the rental began 40 s ago
    source = ReplaySource(TRACE_A, speed=50, clock_ms=clock, not_before_ms=rental_start)
    replayed = replay_all(source, clock, step_ms=20)
    assert len(replayed) == len(trace)
    assert replayed[0].t_ms == rental_start
    assert [s.t_ms - replayed[0].t_ms for s in replayed] == [s.t_ms - trace[0].t_ms for s in trace]
    # 40 s of back-dating were allowed, so the 85.3 s trace took about 45.3 s, not 1.7 s
    assert 45_000 <= clock.ms - (rental_start + 40_000) <= 45_400


def test_replay_subsampled_to_1_hz_keeps_one_sample_per_second_with_file_values():
    trace = {s.energy_mj: s for s in read_trace_csv(TRACE_A)}
    clock = FakeClock(1_900_000_000_000)
    source = ReplaySource(TRACE_A, speed=100, period_ms=1000, clock_ms=clock)
    got = replay_all(source, clock, step_ms=50)
    assert len(got) == 86  # 85.3 s of trace: windows 0..85
    gaps = [b.t_ms - a.t_ms for a, b in zip(got, got[1:])]
    assert all(990 <= g <= 1010 for g in gaps)
    for s in got:
        original = trace[s.energy_mj]
        assert (s.power_mw, s.util_gpu_pct, s.temp_c) == (
            original.power_mw, original.util_gpu_pct, original.temp_c)


def test_replay_gpu_info_comes_from_the_sidecar_json():
    (gpu,) = ReplaySource(TRACE_A, gpu=3).gpus()
    assert (gpu.index, gpu.name, gpu.power_limit_mw) == (3, "NVIDIA H100 80GB HBM3", 700_000)


def test_replay_refuses_bad_arguments(tmp_path):
    with pytest.raises(TelemetryError):
        ReplaySource(TRACE_A, speed=0)
    with pytest.raises(TelemetryError):
        ReplaySource(tmp_path / "missing.csv")


def test_multisource_merges_gpus_and_refuses_index_collisions():
    clock = FakeClock(1_900_000_000_000)
    multi = MultiSource([ReplaySource(TRACE_A, gpu=i, speed=10, clock_ms=clock) for i in (0, 1)])
    assert [g.index for g in multi.gpus()] == [0, 1]
    clock.ms += 100
    assert {s.gpu for s in multi.read()} == {0, 1}
    with pytest.raises(TelemetryError):
        MultiSource([ReplaySource(TRACE_A), ReplaySource(TRACE_A)])


# -- NVML, against a fake pynvml ---------------------------------------------------------------


class FakeNVMLError(Exception):
    pass


class FakeNvml:
    """The subset of pynvml the source uses; faults are injected per GPU and per call."""

    NVMLError = FakeNVMLError
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, count: int = 2) -> None:
        self.count = count
        self.energy = {i: 1_000_000 * (i + 1) for i in range(count)}
        self.fail: set[tuple[int, str]] = set()
        self.calls: list[str] = []
        self.initialised = False
        self.shutdowns = 0

    def _call(self, name: str, handle: int | None = None) -> None:
        self.calls.append(name)
        if handle is not None and ((handle, name) in self.fail or (handle, "*") in self.fail):
            raise FakeNVMLError(f"GPU {handle}: {name} failed (injected)")

    def nvmlInit(self):
        self.initialised = True

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetUUID(self, h):
        return f"GPU-fake-{h}".encode()  # old pynvml returns bytes

    def nvmlDeviceGetName(self, h):
        return "NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        return 700_000

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        self._call("energy", h)
        self.energy[h] += 125_000
        return self.energy[h]

    def nvmlDeviceGetPowerUsage(self, h):
        self._call("power", h)
        return 125_000 + h

    def nvmlDeviceGetUtilizationRates(self, h):
        self._call("util", h)
        return SimpleNamespace(gpu=99, memory=40)

    def nvmlDeviceGetMemoryInfo(self, h):
        self._call("memory", h)
        return SimpleNamespace(used=3 * 1024 * 1024 * 1024 + 5, total=80 * 2**30)

    def nvmlDeviceGetTemperature(self, h, sensor):
        self._call("temp", h)
        return 55

    def __getattr__(self, name):  # per-process and other calls are not allowed on the hot path
        raise AssertionError(f"NvmlSource called pynvml.{name}")


def test_nvml_reads_static_facts_once_and_every_gpu_each_read():
    nvml = FakeNvml(2)
    clock = FakeClock(1_900_000_000_000)
    source = NvmlSource(nvml=nvml, clock_ms=clock)
    assert [(g.index, g.uuid, g.power_limit_mw) for g in source.gpus()] == [
        (0, "GPU-fake-0", 700_000), (1, "GPU-fake-1", 700_000)]
    samples = source.read()
    assert [(s.gpu, s.t_ms, s.energy_mj, s.power_mw, s.util_gpu_pct, s.util_mem_pct,
             s.mem_used_mib, s.temp_c) for s in samples] == [
        (0, clock.ms, 1_125_000, 125_000, 99, 40, 3072, 55),
        (1, clock.ms, 2_125_000, 125_001, 99, 40, 3072, 55)]
    source.close()
    source.close()
    assert nvml.shutdowns == 1


def test_nvml_energy_counter_is_read_at_most_about_once_a_second():
    nvml = FakeNvml(1)
    clock = FakeClock(1_900_000_000_000)
    source = NvmlSource(nvml=nvml, clock_ms=clock)
    energies = []
    for _ in range(10):  # 10 reads at 4 Hz: 2.5 s
        energies.append(source.read()[0].energy_mj)
        clock.ms += 250
    assert nvml.calls.count("energy") == 3  # at 0, 1.0 and 2.0 s
    assert nvml.calls.count("power") == 10
    assert energies == [1_125_000] * 4 + [1_250_000] * 4 + [1_375_000] * 2


def test_nvml_an_erroring_gpu_is_skipped_and_logged_while_others_are_read(caplog):
    nvml = FakeNvml(3)
    clock = FakeClock(1_900_000_000_000)
    source = NvmlSource(nvml=nvml, clock_ms=clock)
    nvml.fail.add((1, "util"))
    with caplog.at_level(logging.WARNING, logger="oracle.telemetry.sources.nvml"):
        for _ in range(3):
            assert [s.gpu for s in source.read()] == [0, 2]
            clock.ms += 1000
        nvml.fail.clear()
        assert [s.gpu for s in source.read()] == [0, 1, 2]
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].levelno == logging.ERROR  # once, not every second
    assert any("recovered" in r.getMessage() for r in caplog.records)


def test_nvml_energy_counter_reset_is_passed_through_for_the_meter(caplog):
    nvml = FakeNvml(1)
    clock = FakeClock(1_900_000_000_000)
    source = NvmlSource(nvml=nvml, clock_ms=clock)
    before = source.read()[0].energy_mj
    nvml.energy[0] = 0  # driver reload: the counter starts again
    clock.ms += 1000
    with caplog.at_level(logging.WARNING):
        after = source.read()[0].energy_mj
    assert after < before and after == 125_000
    assert any("dropped" in r.getMessage() for r in caplog.records)


def test_nvml_unavailable_or_failing_at_start_is_a_telemetry_error():
    nvml = FakeNvml(1)

    def broken_init():
        raise FakeNVMLError("NVML Shared Library Not Found")

    nvml.nvmlInit = broken_init
    with pytest.raises(TelemetryError):
        NvmlSource(nvml=nvml)
    with pytest.raises(TelemetryError):
        NvmlSource(nvml=FakeNvml(0))
    nvml = FakeNvml(2)
    with pytest.raises(TelemetryError):
        NvmlSource(nvml=nvml, indices=[5])
    assert nvml.shutdowns == 1


# -- simulated -------------------------------------------------------------------------------


def run_sim(seed: int, seconds: int) -> list:
    clock = FakeClock(1_900_000_000_000)
    source = SimulatedSource("idle:5,matmul:10,copy:5", seed=seed, gpu_count=2, clock_ms=clock)
    out = []
    for _ in range(seconds):
        out.extend(source.read())
        clock.ms += 1000
    return out


def test_simulated_is_deterministic_from_its_seed():
    assert run_sim(1, 20) == run_sim(1, 20)
    assert run_sim(1, 20) != run_sim(2, 20)


def test_simulated_samples_are_plausible_h100_telemetry():
    samples = [s for s in run_sim(3, 20) if s.gpu == 0]
    idle, matmul, copy = samples[2:5], samples[9:15], samples[18:20]
    assert all(110_000 <= s.power_mw <= 140_000 and s.util_gpu_pct == 0 for s in idle)
    assert all(640_000 <= s.power_mw <= 700_000 and s.util_gpu_pct >= 95 for s in matmul)
    assert all(350_000 <= s.power_mw <= 460_000 for s in copy)
    # The counter integrates the reported power exactly (1 s steps): energy == sum of power.
    for a, b in zip(samples, samples[1:]):
        assert b.energy_mj - a.energy_mj == b.power_mw
        assert b.t_ms - a.t_ms == 1000


def test_simulated_script_parsing_and_end():
    assert [p.kind for p in parse_load_script("idle:1, train:2")] == ["idle", "train"]
    with pytest.raises(TelemetryError):
        parse_load_script("dance:3")
    clock = FakeClock(0)
    source = SimulatedSource("idle:2", repeat=False, clock_ms=clock)
    reads = []
    for _ in range(4):
        reads.append(len(source.read()))
        clock.ms += 1000
    assert reads == [1, 1, 0, 0] and source.finished
