"""Energy attribution: which processes use each rented GPU and whether they are the renter's
(pure judgement, the cgroup parser, and the NVML read path through a stand-in pynvml)."""

from __future__ import annotations

from types import SimpleNamespace

from oracle.agent.attribution import (
    FOREIGN_PROCESS_KIND,
    ForeignProcessWatch,
    ForeignUse,
    GpuProcess,
    container_id_from_cgroup,
    foreign_gpu_use,
    read_gpu_processes,
)

C1, C2 = "a" * 64, "b" * 64


def test_foreign_process_kind_is_7_as_in_the_spec():
    assert FOREIGN_PROCESS_KIND == 7


def test_container_id_from_cgroup_v1_v2_systemd_and_containerd():
    assert container_id_from_cgroup(f"12:memory:/docker/{C1}\n11:cpu:/docker/{C1}\n") == C1
    assert container_id_from_cgroup(f"0::/system.slice/docker-{C1}.scope\n") == C1
    assert container_id_from_cgroup(f"0::/kubepods/pod1/cri-containerd-{C2}.scope\n") == C2
    assert container_id_from_cgroup("0::/user.slice/user-1000.slice/session-3.scope\n") is None
    assert container_id_from_cgroup("0::/\n") is None


def test_processes_of_the_renters_container_are_not_foreign():
    procs = [GpuProcess("GPU-0", 100), GpuProcess("GPU-0", 101)]
    assert foreign_gpu_use(procs, {100: C1, 101: C1}, {"GPU-0": C1}) == []


def test_a_host_process_or_another_container_on_a_rented_gpu_is_foreign():
    procs = [GpuProcess("GPU-1", 300), GpuProcess("GPU-0", 200, 1 << 30), GpuProcess("GPU-0", 100)]
    found = foreign_gpu_use(procs, {100: C1, 200: None, 300: C1}, {"GPU-0": C1, "GPU-1": C2})
    assert [(f.gpu_uuid, f.pid, f.container_id) for f in found] == [("GPU-0", 200, None), ("GPU-1", 300, C1)]
    assert "the host" in found[0].detail and found[0].used_memory_bytes == 1 << 30


def test_gpus_that_are_not_rented_are_not_judged():
    assert foreign_gpu_use([GpuProcess("GPU-9", 5)], {5: None}, {"GPU-0": C1}) == []


class StandInNvml:
    """Just the per-process NVML calls (nvidia-ml-py's names), over a mutable table."""

    def __init__(self, table):
        self.table = table

    def nvmlDeviceGetHandleByUUID(self, uuid):
        return uuid

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [SimpleNamespace(pid=p, usedGpuMemory=m) for p, m in self.table.get(handle, {}).get("compute", [])]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle):
        return [SimpleNamespace(pid=p, usedGpuMemory=None) for p in self.table.get(handle, {}).get("graphics", [])]


def test_read_gpu_processes_lists_compute_and_graphics_once_each():
    nvml = StandInNvml({"GPU-0": {"compute": [(10, 5), (11, 6)], "graphics": [11, 12]}})
    got = sorted(read_gpu_processes(nvml, {"GPU-0": "GPU-0"}), key=lambda p: p.pid)
    assert [(p.pid, p.used_memory_bytes) for p in got] == [(10, 5), (11, 6), (12, None)]


def test_watch_reports_foreign_use_seen_on_two_polls_via_proc_cgroup(tmp_path):
    for pid, cid in ((10, C1), (20, None)):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cgroup").write_text(f"0::/docker/{cid}\n" if cid else "0::/init.scope\n")
    table = {"GPU-0": {"compute": [(10, 1), (20, 1), (30, 1)]}}  # pid 30 exits before its cgroup is read
    watch = ForeignProcessWatch(StandInNvml(table), proc_root=tmp_path)
    assert watch.poll({"GPU-0": C1}) == []  # first sighting: not yet confirmed
    table["GPU-0"]["compute"] = [(10, 1), (20, 1)]
    found = watch.poll({"GPU-0": C1})
    assert [(f.pid, f.container_id) for f in found] == [(20, None)]


def test_the_daemons_own_process_is_not_foreign():
    """The proof-of-GPU solver runs challenges on the rented GPU from the daemon's own process."""
    procs = [GpuProcess("GPU-0", 100), GpuProcess("GPU-0", 4242)]
    found = foreign_gpu_use(procs, {100: C1, 4242: None}, {"GPU-0": C1}, allowed_pids=frozenset({4242}))
    assert found == []
    assert [f.pid for f in foreign_gpu_use(procs, {100: C1, 4242: None}, {"GPU-0": C1})] == [4242]


def test_foreign_stamp_puts_the_latest_count_on_each_sample_of_that_gpu():
    from oracle.agent.attribution import ForeignStamp, foreign_counts
    from oracle.telemetry.samples import GpuInfo, Sample

    class Two:
        finished = False

        def gpus(self):
            return [GpuInfo(0, "GPU-0", "H100", 700_000), GpuInfo(1, "GPU-1", "H100", 700_000)]

        def read(self):
            return [Sample(g, 1000, 5, 100_000, 50, 10, 100, 40) for g in (0, 1)]

    counts = foreign_counts([ForeignUse("GPU-1", 7, None, C1), ForeignUse("GPU-1", 8, C2, C1)])
    assert counts == {"GPU-1": 2}
    stamped = ForeignStamp(Two(), lambda: {0: counts.get("GPU-0", 0), 1: counts.get("GPU-1", 0)})
    assert [s.foreign_process_count for s in stamped.read()] == [0, 2]
    assert stamped.finished is False and len(stamped.gpus()) == 2


def test_sample_gpus_are_matched_to_rented_uuids_by_uuid_else_by_position():
    from oracle.provider.daemon import sample_gpu_uuids
    from oracle.telemetry.samples import GpuInfo

    nvml = [GpuInfo(3, "GPU-b", "H100", 1), GpuInfo(1, "GPU-a", "H100", 1)]
    assert sample_gpu_uuids(nvml, ["GPU-a", "GPU-b"]) == {1: "GPU-a", 3: "GPU-b"}
    simulated = [GpuInfo(0, "GPU-sim-0", "H100", 1), GpuInfo(1, "GPU-sim-1", "H100", 1)]
    assert sample_gpu_uuids(simulated, ["GPU-x", "GPU-y"]) == {0: "GPU-x", 1: "GPU-y"}
