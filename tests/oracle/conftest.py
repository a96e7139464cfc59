"""Shared fixtures of the oracle tests: the real H100 traces shipped in ``oracle/data/traces``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from oracle.traces import TRACE_DIR
from oracle.telemetry.samples import GpuInfo, Sample, read_trace_csv
from oracle_trace_truth import load_truth

REPO_ROOT = Path(__file__).resolve().parents[2]


def telemetry_dir() -> Path:
    """The traces shipped in ``oracle/data/traces`` (``$GPURENT_TRACE_DIR`` overrides)."""
    return TRACE_DIR


def _require(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"telemetry trace not found: {path} (set GPURENT_TRACE_DIR)")
    return path


@pytest.fixture(scope="session")
def trace_dir() -> Path:
    return telemetry_dir()


@pytest.fixture(scope="session")
def trace_a_path(trace_dir: Path) -> Path:
    return _require(trace_dir / "h100_trace_a.csv")


@pytest.fixture(scope="session")
def trace_train_path(trace_dir: Path) -> Path:
    return _require(trace_dir / "h100_trace_train.csv")


@pytest.fixture(scope="session")
def trace_a_truth(trace_a_path: Path) -> dict:
    return load_truth(_require(trace_a_path.with_suffix(".json")))


@pytest.fixture(scope="session")
def trace_train_truth(trace_train_path: Path) -> dict:
    return load_truth(_require(trace_train_path.with_suffix(".json")))


@pytest.fixture(scope="session")
def trace_a_samples(trace_a_path: Path) -> tuple[Sample, ...]:
    return tuple(read_trace_csv(trace_a_path))


@pytest.fixture(scope="session")
def trace_train_samples(trace_train_path: Path) -> tuple[Sample, ...]:
    return tuple(read_trace_csv(trace_train_path))


@pytest.fixture(scope="session")
def h100() -> GpuInfo:
    """The GPU of both traces (power limit from their JSON: 700 W)."""
    return GpuInfo(index=0, uuid="GPU-4612", name="NVIDIA H100 80GB HBM3", power_limit_mw=700_000)
