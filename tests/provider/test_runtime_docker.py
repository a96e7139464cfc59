"""The Docker runtime against a real dockerd: limits, isolation, labels, refusal without GPUs."""

from __future__ import annotations

import pytest

from oracle.provider import NoGpuRuntimeError, ProviderError
from oracle.provider.config import DockerSettings
from oracle.provider.runtime import DockerRuntime, check_gpu_support, container_settings
from oracle.provider.workload import WorkloadSpec

MARKET = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
GPUS = ["GPU-11111111-2222-3333-4444-555555555555", "GPU-66666666-7777-8888-9999-000000000000"]
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl renter@laptop"


def shell_spec(image: str, marker: str = "rental") -> WorkloadSpec:
    return WorkloadSpec(image=image, cmd=["sh", "-c", f"echo {marker} up; while :; do sleep 1; done"],
                        ssh_public_key=KEY, preset="shell")


def test_container_settings_pass_only_the_rented_gpus_by_uuid_and_no_host_mounts():
    spec = WorkloadSpec(image="img", cmd=["x"], env={"A": "1"})
    kw = container_settings(chain_id=31337, market=MARKET, rental_id=7, spec=spec, gpu_uuids=GPUS[:1], gpu_count=1,
                            docker=DockerSettings(cpus_per_gpu=4, memory_mib_per_gpu=1024, disk_gib=20),
                            gpus_enabled=True)
    [request] = kw["device_requests"]
    assert request["Driver"] == "nvidia" and request["DeviceIDs"] == GPUS[:1] and request.get("Count") in (None, 0)
    assert kw["mounts"] == [] and kw["volumes"] == {} and kw["devices"] == [] and kw["privileged"] is False
    assert kw["nano_cpus"] == 4_000_000_000 and kw["mem_limit"] == kw["memswap_limit"] == 1024 << 20
    assert kw["storage_opt"] == {"size": "20G"} and kw["network_mode"] == "none"
    assert kw["labels"]["io.gpurent.rental-id"] == "7" and kw["labels"]["io.gpurent.gpu-uuids"] == GPUS[0]
    assert kw["environment"] == {"A": "1", "GPURENT_RENTAL_ID": "7", "NVIDIA_VISIBLE_DEVICES": GPUS[0]}


def test_limits_scale_with_the_rented_gpu_count():
    kw = container_settings(chain_id=1, market=MARKET, rental_id=1, spec=WorkloadSpec(image="i"), gpu_uuids=GPUS,
                            gpu_count=2, docker=DockerSettings(cpus_per_gpu=2, memory_mib_per_gpu=100),
                            gpus_enabled=False)
    assert kw["nano_cpus"] == 4_000_000_000 and kw["mem_limit"] == 200 << 20 and "device_requests" not in kw
    assert kw["environment"]["NVIDIA_VISIBLE_DEVICES"] == "void"  # CPU-only (dev): no GPU at all


def test_an_image_that_asks_the_nvidia_runtime_for_every_gpu_gets_only_the_rented_ones():
    kw = container_settings(chain_id=1, market=MARKET, rental_id=1, spec=WorkloadSpec(image="nvidia/cuda"),
                            gpu_uuids=GPUS[1:], gpu_count=1, docker=DockerSettings(), gpus_enabled=True)
    assert kw["environment"]["NVIDIA_VISIBLE_DEVICES"] == GPUS[1]  # overrides the image's ENV ...=all


def test_without_an_nvidia_runtime_the_daemon_refuses_unless_dev_cpu_only():
    info = {"Runtimes": {"runc": {}, "io.containerd.runc.v2": {}}}
    with pytest.raises(NoGpuRuntimeError, match="no NVIDIA runtime"):
        check_gpu_support(info, allow_cpu_only=False)
    assert check_gpu_support(info, allow_cpu_only=True) is False
    assert check_gpu_support({"Runtimes": {"nvidia": {}, "runc": {}}}, allow_cpu_only=False) is True


def test_real_dockerd_without_nvidia_runtime_is_refused(docker_url):
    with pytest.raises(NoGpuRuntimeError):
        DockerRuntime(DockerSettings(base_url=docker_url), chain_id=31337, market=MARKET)


@pytest.fixture
def runtime(docker_url, busybox_image, docker_client):
    rt = DockerRuntime(DockerSettings(base_url=docker_url, allow_cpu_only=True, cpus_per_gpu=0.5,
                                      memory_mib_per_gpu=128, pids_limit=64, stop_timeout_s=1),
                       chain_id=31337, market=MARKET)
    yield rt
    for rid in list(rt.adopt()):
        rt.remove(rid)


def test_container_runs_with_limits_labels_key_and_no_network(runtime, busybox_image, docker_client):
    started = runtime.run(1, shell_spec(busybox_image), GPUS[:1], 1)
    assert started.status == "running" and started.gpu_uuids == (GPUS[0],)
    attrs = docker_client.containers.get(started.container_id).attrs
    host = attrs["HostConfig"]
    assert host["NanoCpus"] == 500_000_000 and host["Memory"] == 128 << 20 and host["PidsLimit"] == 64
    assert host["NetworkMode"] == "none" and not host["Binds"] and attrs["Mounts"] == []
    assert host["Privileged"] is False and "no-new-privileges:true" in host["SecurityOpt"]
    code, out, _ = runtime.exec(1, ["cat", "/root/.ssh/authorized_keys"])
    assert code == 0 and out.decode().strip() == KEY
    code, out, _ = runtime.exec(1, ["sh", "-c", "ls /sys/class/net"])
    assert out.split() == [b"lo"]  # network none: loopback only
    assert b"rental up" in b"".join(runtime.logs(1, follow=False))


def test_a_second_rental_cannot_see_the_first_ones_files_or_processes(runtime, busybox_image):
    runtime.run(1, shell_spec(busybox_image, "first-secret-marker"), GPUS[:1], 1)
    runtime.run(2, shell_spec(busybox_image, "second"), GPUS[1:], 1)
    assert runtime.exec(1, ["sh", "-c", "echo top-secret > /root/data.txt"])[0] == 0
    assert runtime.exec(1, ["cat", "/root/data.txt"])[1] == b"top-secret\n"
    assert runtime.exec(2, ["ls", "-a", "/root"])[1].split() == [b".", b"..", b".ssh"]
    assert runtime.exec(2, ["cat", "/root/data.txt"])[0] != 0
    _, processes, _ = runtime.exec(2, ["ps", "-o", "args"])
    assert b"first-secret-marker" not in processes and b"second up" in processes  # its own PID namespace
    assert b"first-secret-marker" in runtime.exec(1, ["ps", "-o", "args"])[1]
    code, out, _ = runtime.exec(2, ["sh", "-c", "ls /proc | grep -c '^[0-9]'"])
    assert int(out) < 10


def test_adopt_finds_the_containers_by_label_and_remove_deletes_them(runtime, busybox_image, docker_client):
    first = runtime.run(5, shell_spec(busybox_image), GPUS[:1], 1)
    other_market = DockerRuntime(runtime.settings, chain_id=31337, market="0x" + "12" * 20)
    assert other_market.adopt() == {}
    adopted = runtime.adopt()
    assert list(adopted) == [5] and adopted[5].container_id == first.container_id
    assert runtime.remove(5) is True and runtime.adopt() == {}
    assert runtime.remove(5) is False
    with pytest.raises(ProviderError, match="no container"):
        runtime.exec(5, ["true"])


def test_provider_serve_refuses_to_start_without_gpu_support(tmp_path, docker_url):
    from click.testing import CliRunner

    from oracle.cli.main import main

    config = tmp_path / "provider.toml"
    config.write_text(f"""
rpc_url = "http://127.0.0.1:9"
chain_id = 31337
market_address = "{MARKET}"
keystore_path = "provider.json"
agent_keystore_path = "agent.json"
state_dir = "state"
nodes = ["http://127.0.0.1:9"]
[[gpus]]
index = 0
uuid = "{GPUS[0]}"
[docker]
base_url = "{docker_url}"
""")
    result = CliRunner().invoke(main, ["provider", "serve", "--config", str(config)])
    assert result.exit_code == 1 and "no NVIDIA runtime" in result.output and "refuses" in result.output
    assert "Traceback" not in result.output


def test_cpu_only_containers_are_dev_mode_only(tmp_path):
    from oracle.errors import ConfigError
    from oracle.provider.config import load_provider_config

    config = tmp_path / "provider.toml"
    config.write_text(f"""
rpc_url = "http://127.0.0.1:9"
chain_id = 31337
market_address = "{MARKET}"
keystore_path = "provider.json"
agent_keystore_path = "agent.json"
state_dir = "state"
nodes = ["http://127.0.0.1:9"]
[[gpus]]
index = 0
uuid = "{GPUS[0]}"
[docker]
allow_cpu_only = true
""")
    with pytest.raises(ConfigError, match="dev mode only"):
        load_provider_config(config)
    config.write_text(config.read_text().replace("state_dir", "dev = true\nstate_dir"))
    loaded = load_provider_config(config)
    assert loaded.docker.allow_cpu_only and loaded.state_dir == tmp_path / "state"
