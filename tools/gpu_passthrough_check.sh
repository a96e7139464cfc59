#!/usr/bin/env bash
# GPU passthrough check for a real GPU machine with Docker and the NVIDIA Container Toolkit.
# Not run in CI (no GPU there). It uses the daemon's own code (oracle.provider.runtime and
# oracle.agent.attribution) and checks that:
#   1. a rental container given one GPU by UUID sees exactly that GPU (nvidia-smi -L inside);
#   2. NVML on the host attributes the container's CUDA process to that container (no foreign use);
#   3. a process from another container on the same GPU is reported as FOREIGN_PROCESS.
# Usage: tools/gpu_passthrough_check.sh [CUDA_IMAGE]   (default pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime)
# It prints each command and reading; paste the output into the README when run.
set -euo pipefail
cd "$(dirname "$0")/.."
image="${1:-pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime}"
echo "# $(date -u +%FT%TZ) on $(hostname); image ${image}"
echo "\$ nvidia-smi -L"; nvidia-smi -L
echo "\$ docker info --format '{{json .Runtimes}}'"; docker info --format '{{json .Runtimes}}'
docker pull -q "${image}" >/dev/null
exec .venv/bin/python - "${image}" <<'PY'
import sys, time
import pynvml
from oracle.agent.attribution import ForeignProcessWatch, container_id_from_cgroup
from oracle.provider.config import DockerSettings
from oracle.provider.runtime import DockerRuntime
from oracle.provider.workload import WorkloadSpec

image = sys.argv[1]
pynvml.nvmlInit()
count = pynvml.nvmlDeviceGetCount()
uuids = [pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]
uuids = [u.decode() if isinstance(u, bytes) else u for u in uuids]
rented = uuids[-1]
print(f"host GPUs: {uuids}; renting {rented}")
rt = DockerRuntime(DockerSettings(memory_mib_per_gpu=16384), chain_id=0, market="0x" + "00" * 20)
hold = "import torch,time; x=torch.ones(1024,1024,device='cuda'); print('cuda ok', torch.cuda.get_device_name(0), flush=True); time.sleep(60)"
spec = WorkloadSpec(image=image, cmd=["python", "-c", hold])
c = rt.run(990001, spec, [rented], 1)
try:
    code, out, err = rt.exec(990001, ["nvidia-smi", "-L"])
    seen = [l for l in out.decode().splitlines() if l.strip()]
    print("inside the container, nvidia-smi -L:", seen)
    assert len(seen) == 1 and rented in seen[0], "the container must see exactly the rented GPU"
    time.sleep(15)
    watch = ForeignProcessWatch(pynvml)
    owners = {rented: c.container_id}
    first, second = watch.poll(owners), watch.poll(owners)
    procs = pynvml.nvmlDeviceGetComputeRunningProcesses(pynvml.nvmlDeviceGetHandleByUUID(rented))
    for p in procs:
        cid = container_id_from_cgroup(open(f"/proc/{p.pid}/cgroup").read())
        print(f"NVML: pid {p.pid} on {rented} -> container {cid and cid[:12]} (rental container {c.container_id[:12]})")
    assert procs and not second, f"the rental's own process must not be foreign: {second}"
    other = rt.docker.containers.run(image, ["python", "-c", hold], detach=True,
                                     device_requests=[__import__("docker").types.DeviceRequest(device_ids=[rented], capabilities=[["gpu"]])])
    try:
        time.sleep(15)
        watch.poll(owners)
        foreign = watch.poll(owners)
        print("with another container on the rented GPU:", [f.detail for f in foreign])
        assert foreign, "another container's process on the rented GPU must be FOREIGN_PROCESS"
    finally:
        other.remove(force=True)
    print("PASS: the container sees exactly the rented GPU; NVML attributes its processes to it")
finally:
    rt.remove(990001)
PY
