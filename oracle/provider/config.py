"""``provider.toml``: typed configuration of ``gpurent provider serve``; unsafe values refuse to start.

Keys and passwords: the provider wallet (sends ``startRental``) and the agent key (signs
telemetry, opens renters' workload envelopes) come from encrypted keystores; passwords from
``*_password_file`` or the environment (``GPURENT_PROVIDER_PASSWORD``, ``GPURENT_AGENT_PASSWORD``).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError, model_validator

from oracle.errors import ConfigError

PROVIDER_PASSWORD_ENV = "GPURENT_PROVIDER_PASSWORD"
AGENT_PASSWORD_ENV = "GPURENT_AGENT_PASSWORD"


class GpuSlot(BaseModel):
    """One GPU the daemon may rent out: its NVML index and UUID (``nvidia-smi -L``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    index: int = Field(ge=0)
    uuid: str = Field(min_length=1)


class DockerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str | None = None  # None: DOCKER_HOST or the default socket
    network: Literal["none", "host"] = "none"  # no bridge: containers get no network or the host's
    cpus_per_gpu: float = Field(default=8.0, gt=0, le=512)
    memory_mib_per_gpu: int = Field(default=65_536, ge=64)
    disk_gib: int = Field(default=0, ge=0, description="writable layer quota; 0 = none (needs overlay2 on xfs+pquota)")
    pids_limit: int = Field(default=4096, ge=16)
    # Dev mode only: run containers without GPUs where Docker has no NVIDIA runtime (tests, demo).
    allow_cpu_only: bool = False
    stop_timeout_s: int = Field(default=10, ge=0, le=300)


class TelemetrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # "external" (dev only): the daemon runs containers and leaves telemetry to a `gpurent agent
    # run` of the provider's own (the demo, which replays a trace on a time-compressed chain).
    source: Literal["nvml", "simulated", "external"] = "nvml"
    sample_hz: float = Field(default=1.0, gt=0, le=10)
    batch_samples: int = Field(default=10, ge=1, le=600)
    foreign_process_poll_s: float = Field(default=5.0, gt=0)
    # Proof of GPU (issue 8): answer the nodes' challenges for each rental's GPUs. "cuda" needs the
    # gpurent[gpu] extra (PyTorch); a rental whose challenges go unanswered is unpaid and slashable.
    challenges: Literal["off", "numpy", "cuda"] = "off"
    challenge_drain_s: float = Field(default=300.0, ge=0, le=3600,
                                     description="answer owed challenges, and the end challenge, after the end")


class ProviderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rpc_url: str
    chain_id: int = Field(ge=1)
    market_address: str
    start_block: int = Field(default=0, ge=0)
    confirmations: int = Field(default=1, ge=0, le=64)
    poll_interval_s: float = Field(default=2.0, gt=0, le=60)

    keystore_path: Path
    keystore_password_file: Path | None = None
    agent_keystore_path: Path
    agent_keystore_password_file: Path | None = None
    dev: bool = False

    state_dir: Path
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(default=8710, ge=0, le=65535)
    public_url: AnyHttpUrl | None = None

    offers: list[int] = Field(default_factory=list, description="offer ids served; empty = every offer of this provider")
    accept: Literal["auto", "manual"] = "auto"
    allowed_images: list[str] = Field(default_factory=list, description="glob patterns; empty = any image")
    start_margin_s: int = Field(default=60, ge=0, description="give up on a rental this close to its start deadline")
    nodes: list[AnyHttpUrl] = Field(min_length=1)
    gpus: list[GpuSlot] = Field(min_length=1)
    docker: DockerSettings = DockerSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    webhook_url: AnyHttpUrl | None = None
    budget_low_fraction: float = Field(default=0.1, ge=0, le=1)

    @model_validator(mode="after")
    def _consistent(self) -> ProviderConfig:
        if len({g.uuid for g in self.gpus}) != len(self.gpus) or len({g.index for g in self.gpus}) != len(self.gpus):
            raise ValueError("gpus: every index and uuid must be distinct")
        if self.docker.allow_cpu_only and not self.dev:
            raise ValueError("docker.allow_cpu_only runs workloads without GPUs: dev mode only (set dev = true)")
        if self.telemetry.source == "simulated" and not self.dev:
            raise ValueError("telemetry.source = 'simulated' signs made-up telemetry: dev mode only")
        if self.telemetry.source == "external" and not self.dev:
            raise ValueError("telemetry.source = 'external' leaves rentals without the daemon's telemetry: dev mode only")
        return self

    @property
    def node_urls(self) -> list[str]:
        return [str(n).rstrip("/") for n in self.nodes]

    @property
    def url(self) -> str:
        if self.public_url is not None:
            return str(self.public_url).rstrip("/")
        return f"http://{self.listen_host}:{self.listen_port}"

    def password(self, which: Literal["provider", "agent"]) -> str:
        path = self.keystore_password_file if which == "provider" else self.agent_keystore_password_file
        env = PROVIDER_PASSWORD_ENV if which == "provider" else AGENT_PASSWORD_ENV
        if path is not None:
            try:
                return path.read_text().splitlines()[0]
            except (OSError, IndexError) as exc:
                raise ConfigError(f"cannot read the {which} keystore password file {path}: {exc}") from exc
        value = os.environ.get(env)
        if value is None:
            raise ConfigError(f"no {which} keystore password: set {which}_keystore_password_file or {env}")
        return value


def load_provider_config(path: str | Path) -> ProviderConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read provider config {path}: {exc}") from exc
    try:
        config = ProviderConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid provider config {path}:\n{exc}") from None
    base = path.resolve().parent  # relative paths are relative to the config file
    fix = {k: (base / v if v is not None and not Path(v).is_absolute() else v)
           for k, v in (("keystore_path", config.keystore_path), ("agent_keystore_path", config.agent_keystore_path),
                        ("state_dir", config.state_dir), ("keystore_password_file", config.keystore_password_file),
                        ("agent_keystore_password_file", config.agent_keystore_password_file))}
    return config.model_copy(update=fix)
