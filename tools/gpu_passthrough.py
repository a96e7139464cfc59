#!/usr/bin/env python
"""GPU passthrough and NVML attribution on a real GPU machine (run by tools/gpu_check.sh).

With Docker and the NVIDIA Container Toolkit, using the provider daemon's own code
(``oracle.provider.runtime``, ``oracle.agent.attribution``), it checks and records that:

1. a rental container given one GPU by UUID sees exactly that GPU (``nvidia-smi -L`` inside:
   one line, that UUID), and ``NVIDIA_VISIBLE_DEVICES`` inside is that UUID;
2. NVML on the host lists the container's CUDA process on that GPU, and attributes it to the
   rental's container (no foreign use), by its cgroup;
3. a process of another container on the same GPU is FOREIGN_PROCESS (two consecutive polls), and
   the count a telemetry sample would carry for that GPU is 1.

``--dry-run`` (no GPU, no Docker): checks the container settings the runtime would use for a
rented UUID (the device request pins it, ``NVIDIA_VISIBLE_DEVICES`` equals it, no mounts) and the
attribution of a stand-in process table; it proves nothing about any GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from oracle.agent.attribution import (  # noqa: E402
    ForeignProcessWatch,
    GpuProcess,
    container_id_from_cgroup,
    foreign_counts,
    foreign_gpu_use,
)
from oracle.provider.config import DockerSettings  # noqa: E402
from oracle.provider.runtime import container_settings  # noqa: E402
from oracle.provider.workload import WorkloadSpec  # noqa: E402

DEFAULT_IMAGE = "pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime"
RENTAL_ID = 990001
HOLD = ("import torch,time; x=torch.ones(1024,1024,device='cuda'); "
        "print('cuda ok', torch.cuda.get_device_name(0), flush=True); time.sleep(90)")


def settings_check(uuid: str, image: str) -> dict:
    """What the runtime asks Docker for, for one rented UUID (pure)."""
    spec = WorkloadSpec(image=image, cmd=["python", "-c", HOLD])
    kwargs = container_settings(chain_id=0, market="0x" + "00" * 20, rental_id=RENTAL_ID, spec=spec,
                                gpu_uuids=[uuid], gpu_count=1, docker=DockerSettings(memory_mib_per_gpu=16384),
                                gpus_enabled=True)
    requests = kwargs["device_requests"]
    checks = {
        "one_device_request": len(requests) == 1,
        "device_ids_are_the_rented_uuid": list(requests[0]["DeviceIDs"]) == [uuid],
        "nvidia_visible_devices_is_the_rented_uuid": kwargs["environment"]["NVIDIA_VISIBLE_DEVICES"] == uuid,
        "no_mounts_or_devices": kwargs["mounts"] == [] and kwargs["volumes"] == {} and kwargs["devices"] == [],
        "not_privileged": kwargs["privileged"] is False,
    }
    return {"uuid": uuid, "checks": checks, "ok": all(checks.values())}


def dry_run(out: Path, image: str) -> dict:
    report = {"dry_run": True, "settings": settings_check("GPU-dry-run-0", image)}
    own, other = "a" * 64, "b" * 64
    procs = [GpuProcess("GPU-dry-run-0", 100), GpuProcess("GPU-dry-run-0", 200)]
    found = foreign_gpu_use(procs, {100: own, 200: other}, {"GPU-dry-run-0": own})
    report["attribution"] = {"foreign_pids": [f.pid for f in found], "counts": foreign_counts(found),
                             "ok": [f.pid for f in found] == [200] and foreign_counts(found) == {"GPU-dry-run-0": 1}}
    report["ok"] = report["settings"]["ok"] and report["attribution"]["ok"]
    return report


def real_run(out: Path, image: str) -> dict:
    import docker
    import pynvml

    from oracle.provider.runtime import DockerRuntime

    pynvml.nvmlInit()
    text = lambda v: v.decode() if isinstance(v, bytes) else str(v)  # noqa: E731
    uuids = [text(pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(i)))
             for i in range(pynvml.nvmlDeviceGetCount())]
    rented = uuids[-1]
    report: dict = {"dry_run": False, "host_gpus": uuids, "rented": rented, "image": image,
                    "settings": settings_check(rented, image)}
    print(f"host GPUs: {uuids}; renting {rented}", flush=True)
    rt = DockerRuntime(DockerSettings(memory_mib_per_gpu=16384), chain_id=0, market="0x" + "00" * 20)
    report["docker_runtimes"] = sorted((rt.docker.info().get("Runtimes") or {}).keys())
    container = rt.run(RENTAL_ID, WorkloadSpec(image=image, cmd=["python", "-c", HOLD]), [rented], 1)
    try:
        code, smi, _ = rt.exec(RENTAL_ID, ["nvidia-smi", "-L"])
        seen = [line for line in smi.decode().splitlines() if line.strip()]
        _, env, _ = rt.exec(RENTAL_ID, ["sh", "-c", "echo $NVIDIA_VISIBLE_DEVICES"])
        report["inside"] = {"nvidia_smi_L": seen, "nvidia_visible_devices": env.decode().strip()}
        report["sees_exactly_the_rented_gpu"] = len(seen) == 1 and rented in seen[0] and env.decode().strip() == rented
        print("inside the container:", report["inside"], flush=True)
        time.sleep(15)  # CUDA context up
        watch = ForeignProcessWatch(pynvml, allowed_pids=frozenset({os.getpid()}))
        owners = {rented: container.container_id}
        watch.poll(owners)
        own_use = watch.poll(owners)
        procs = pynvml.nvmlDeviceGetComputeRunningProcesses(pynvml.nvmlDeviceGetHandleByUUID(rented))
        listed = []
        for p in procs:
            try:
                cid = container_id_from_cgroup(open(f"/proc/{p.pid}/cgroup").read())
            except OSError:
                cid = None
            listed.append({"pid": int(p.pid), "container": cid and cid[:12]})
        report["nvml_processes"] = listed
        report["own_process_attributed"] = bool(listed) and any(
            row["container"] == container.container_id[:12] for row in listed) and not own_use
        print("NVML on the rented GPU:", listed, flush=True)
        other = rt.docker.containers.run(image, ["python", "-c", HOLD], detach=True, device_requests=[
            docker.types.DeviceRequest(device_ids=[rented], capabilities=[["gpu"]])])
        try:
            time.sleep(15)
            watch.poll(owners)
            foreign = watch.poll(owners)
            report["foreign"] = {"details": [f.detail for f in foreign], "counts": foreign_counts(foreign)}
            report["other_container_is_foreign"] = foreign_counts(foreign).get(rented, 0) >= 1
            print("another container on the rented GPU:", report["foreign"], flush=True)
        finally:
            other.remove(force=True)
    finally:
        rt.remove(RENTAL_ID)
        pynvml.nvmlShutdown()
    report["ok"] = bool(report["settings"]["ok"] and report.get("sees_exactly_the_rented_gpu")
                        and report.get("own_process_attributed") and report.get("other_container_is_foreign"))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="directory for passthrough.json")
    parser.add_argument("--image", default=DEFAULT_IMAGE, help="a CUDA image with PyTorch (pulled if absent)")
    parser.add_argument("--dry-run", action="store_true", help="no GPU or Docker: settings and attribution logic only")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = dry_run(out, args.image) if args.dry_run else real_run(out, args.image)
    report["command"] = " ".join([sys.executable, *sys.argv])
    (out / "passthrough.json").write_text(json.dumps(report, indent=2) + "\n")
    print(("PASS" if report["ok"] else "FAIL") + f": passthrough and attribution ({out / 'passthrough.json'})", flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
