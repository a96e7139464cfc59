"""Telemetry samples as integers with units in their names, and the shared CSV trace format."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterable, Iterator

from oracle.errors import TelemetryError


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """Static facts of one GPU, read once."""

    index: int
    uuid: str
    name: str
    power_limit_mw: int


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of one GPU. Every field is an integer; ``t_ms`` is unix milliseconds.

    ``foreign_process_count``: processes on this GPU outside the renter's container at the
    agent's latest attribution poll (issue 10; 0 when none or when nothing attributes). On the
    wire the field is present only when it is not 0, so a batch without foreign use keeps the
    bytes it always had.
    """

    gpu: int
    t_ms: int
    energy_mj: int
    power_mw: int
    util_gpu_pct: int
    util_mem_pct: int
    mem_used_mib: int
    temp_c: int
    foreign_process_count: int = 0

    def to_wire(self) -> dict[str, int]:
        wire = {
            "gpu": self.gpu,
            "t_ms": self.t_ms,
            "energy_mj": self.energy_mj,
            "power_mw": self.power_mw,
            "util_gpu_pct": self.util_gpu_pct,
            "util_mem_pct": self.util_mem_pct,
            "mem_used_mib": self.mem_used_mib,
            "temp_c": self.temp_c,
        }
        if self.foreign_process_count:
            wire["foreign_process_count"] = self.foreign_process_count
        return wire


SAMPLE_FIELDS = tuple(Sample.__dataclass_fields__)
#: The fields every wire sample carries; ``foreign_process_count`` only when not 0.
REQUIRED_SAMPLE_FIELDS = SAMPLE_FIELDS[:-1]


def seconds_text_to_ms(text: str) -> int:
    """Exact conversion of a decimal seconds string ("1795743108.464") to integer milliseconds."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:
        raise TelemetryError(f"not a number of seconds: {text!r}") from exc
    if not value.is_finite():
        raise TelemetryError(f"not a finite number of seconds: {text!r}")
    return int((value * 1000).to_integral_value())


def _int_field(row: dict[str, str], name: str, line: int) -> int:
    raw = row.get(name)
    if raw is None or raw.strip() == "":
        raise TelemetryError(f"line {line}: column {name!r} is missing")
    try:
        return int(raw)
    except ValueError as exc:
        raise TelemetryError(f"line {line}: column {name!r} is not an integer: {raw!r}") from exc


def read_trace_csv(path: str | Path, gpu: int = 0) -> list[Sample]:
    """Read a telemetry CSV in the format of ``shared/telemetry/h100_trace_a.csv``."""
    return list(iter_trace_csv(path, gpu))


def iter_trace_csv(path: str | Path, gpu: int = 0) -> Iterator[Sample]:
    path = Path(path)
    if not path.is_file():
        raise TelemetryError(f"no such telemetry file: {path}")
    with path.open(newline="") as handle:
        yield from parse_trace_rows(csv.DictReader(handle), gpu)


def parse_trace_rows(rows: Iterable[dict[str, str]], gpu: int = 0) -> Iterator[Sample]:
    for line, row in enumerate(rows, start=2):
        if "t_unix" not in row:
            raise TelemetryError(f"line {line}: not a gpurent telemetry CSV (no t_unix column)")
        yield Sample(
            gpu=gpu,
            t_ms=seconds_text_to_ms(row["t_unix"]),
            energy_mj=_int_field(row, "energy_mj", line),
            power_mw=_int_field(row, "power_mw", line),
            util_gpu_pct=_int_field(row, "util_gpu_pct", line),
            util_mem_pct=_int_field(row, "util_mem_pct", line),
            mem_used_mib=_int_field(row, "mem_used_mib", line),
            temp_c=_int_field(row, "temp_c", line),
        )
