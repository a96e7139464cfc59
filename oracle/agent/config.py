"""Typed agent configuration. Unsafe or impossible values stop the agent before it starts."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from oracle.errors import ConfigError
from oracle.telemetry.batches import MAX_SAMPLES_PER_BATCH, UINT256_MAX, to_checksum_address

PASSWORD_ENV = "GPURENT_AGENT_PASSWORD"


class SourceConfig(BaseModel):
    """Where samples come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["nvml", "replay", "simulated"] = "nvml"
    # nvml: which GPU indices belong to the rental (all of them when None)
    indices: list[int] | None = None
    # replay: the CSV, its speed, how many GPUs replay it, and the subsampling period
    trace: Path | None = None
    speed: float = Field(default=1.0, gt=0, le=10_000)
    replay_gpus: int = Field(default=1, ge=1, le=64)
    period_ms: int | None = Field(default=1000, gt=0)
    not_before_ms: int | None = Field(default=None, ge=0, description="e.g. the rental's start")
    # simulated: the load script (see oracle.telemetry.sources.simulated), seed, GPU count
    load_script: str | None = None
    seed: int = 0
    simulated_gpus: int = Field(default=1, ge=1, le=64)
    repeat: bool = True

    @model_validator(mode="after")
    def _replay_needs_trace(self) -> SourceConfig:
        if self.kind == "replay" and self.trace is None:
            raise ValueError("a replay source needs `trace` (a telemetry CSV)")
        return self


class AgentConfig(BaseModel):
    """Everything ``run_agent`` needs. Build it in code, or load a TOML/JSON file with
    ``load_agent_config``; the keystore password comes from ``keystore_password``,
    ``keystore_password_file`` (first line) or the ``GPURENT_AGENT_PASSWORD`` environment
    variable, in that order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rental_id: int = Field(ge=0, le=UINT256_MAX)
    # The deployment the rental lives in: every batch is signed over both (docs/protocol.md).
    chain_id: int = Field(ge=1, le=UINT256_MAX)
    market: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$", description="the GpuRentMarket address")
    nodes: list[AnyHttpUrl] = Field(min_length=1)
    keystore_path: Path
    keystore_password: SecretStr | None = None
    keystore_password_file: Path | None = None
    dev: bool = False
    spool_path: Path
    source: SourceConfig = SourceConfig()
    sample_hz: float = Field(default=1.0, gt=0, le=10)
    batch_samples: int = Field(default=10, ge=1, le=MAX_SAMPLES_PER_BATCH)
    batch_seconds: float | None = Field(default=None, gt=0, le=3600)
    request_timeout_s: float = Field(default=5.0, gt=0, le=120)
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0, le=3600)
    drain_timeout_s: float = Field(default=5.0, ge=0, le=600)
    spool_warn_batches: int = Field(default=10_000, ge=1)
    # Proof of GPU (docs/protocol.md): answer the nodes' challenges with this solver.
    challenges: Literal["off", "numpy", "cuda"] = "off"
    challenge_poll_s: float = Field(default=1.0, gt=0, le=60)
    challenge_cheat: bool = Field(default=False, description="dev only: answer every challenge wrongly")
    challenge_drain_s: float = Field(default=300.0, ge=0, le=3600,
                                     description="on exit, keep answering challenges already drawn (and, once the "
                                                 "rental ended, its end challenge) for at most this long")

    @field_validator("nodes")
    @classmethod
    def _distinct_nodes(cls, nodes: list[AnyHttpUrl]) -> list[AnyHttpUrl]:
        urls = [str(n).rstrip("/") for n in nodes]
        if len(set(urls)) != len(urls):
            raise ValueError("nodes must be distinct")
        return nodes

    @field_validator("market")
    @classmethod
    def _checksummed_market(cls, market: str) -> str:
        return to_checksum_address(market)

    @model_validator(mode="after")
    def _consistent(self) -> AgentConfig:
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError("backoff_initial_s must not exceed backoff_max_s")
        if self.keystore_password is not None and self.keystore_password_file is not None:
            raise ValueError("set keystore_password or keystore_password_file, not both")
        if self.challenge_cheat and not self.dev:
            raise ValueError("challenge_cheat is for dev mode only")
        return self

    @property
    def node_urls(self) -> list[str]:
        return [str(n).rstrip("/") for n in self.nodes]

    @property
    def effective_batch_seconds(self) -> float:
        """The longest a batch stays open: by default the time ``batch_samples`` ticks take."""
        if self.batch_seconds is not None:
            return self.batch_seconds
        return self.batch_samples / self.sample_hz

    def password(self) -> str:
        if self.keystore_password is not None:
            return self.keystore_password.get_secret_value()
        if self.keystore_password_file is not None:
            try:
                return self.keystore_password_file.read_text().splitlines()[0]
            except (OSError, IndexError) as exc:
                raise ConfigError(f"cannot read keystore_password_file: {exc}") from exc
        value = os.environ.get(PASSWORD_ENV)
        if value is None:
            raise ConfigError(
                f"no keystore password: set keystore_password or the {PASSWORD_ENV} variable"
            )
        return value


def load_agent_config(path: str | Path, **overrides: object) -> AgentConfig:
    """Read a TOML (``.toml``) or JSON file into an ``AgentConfig``; ``overrides`` win."""
    path = Path(path)
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read agent config {path}: {exc}") from exc
    data.update(overrides)
    return make_agent_config(data)


def make_agent_config(data: dict) -> AgentConfig:
    """Validate a plain dict; pydantic's errors become one ``ConfigError``."""
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid agent config:\n{exc}") from exc
