"""A stand-in for ``pynvml`` (nvidia-ml-py) on hosts without a GPU: two H100s drawing a steady
300 W at 90 % utilization, with an energy counter that follows the wall clock. Put this
directory first on PYTHONPATH to drive the demo's NVML path (tests/e2e/test_demo.py)."""

import time
from types import SimpleNamespace

NVML_TEMPERATURE_GPU = 0
POWER_MW = 300_000
_T0 = time.time()


class NVMLError(Exception):
    pass


def nvmlInit():
    pass


def nvmlShutdown():
    pass


def nvmlDeviceGetCount():
    return 2


def nvmlDeviceGetHandleByIndex(index):
    return index


def nvmlDeviceGetUUID(handle):
    return f"GPU-fake-h100-{handle}"


def nvmlDeviceGetName(handle):
    return "NVIDIA H100 80GB HBM3"


def nvmlDeviceGetEnforcedPowerLimit(handle):
    return 700_000


def nvmlDeviceGetTotalEnergyConsumption(handle):
    return 1_000_000 + int((time.time() - _T0) * POWER_MW)  # mJ: W x s x 1000 / 1000


def nvmlDeviceGetPowerUsage(handle):
    return POWER_MW


def nvmlDeviceGetUtilizationRates(handle):
    return SimpleNamespace(gpu=90, memory=40)


def nvmlDeviceGetMemoryInfo(handle):
    return SimpleNamespace(used=40_000 * 1024 * 1024, total=81_559 * 1024 * 1024, free=0)


def nvmlDeviceGetTemperature(handle, sensor):
    return 55


def nvmlDeviceGetHandleByUUID(uuid):
    prefix = "GPU-fake-h100-"
    if not str(uuid).startswith(prefix):
        raise NVMLError(f"no GPU {uuid}")
    return int(str(uuid)[len(prefix):])


def nvmlDeviceGetComputeRunningProcesses(handle):
    """Processes listed in the file $GPURENT_FAKE_NVML_PROCESSES ("GPU_INDEX PID" lines), else none."""
    import os

    path = os.environ.get("GPURENT_FAKE_NVML_PROCESSES")
    if not path or not os.path.exists(path):
        return []
    rows = [line.split() for line in open(path).read().splitlines() if line.strip()]
    return [SimpleNamespace(pid=int(pid), usedGpuMemory=1 << 20) for index, pid in rows if int(index) == handle]


def nvmlDeviceGetGraphicsRunningProcesses(handle):
    return []


def nvmlDeviceGetSerial(handle):
    return f"fake-serial-{handle}"
