"""``gpurent meter TRACE.csv``: meter a telemetry CSV as one GPU for one rental spanning the
whole file, with the same pure core the attestation node uses."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from oracle.cli.params import uint
from oracle.errors import GpurentError
from oracle.metering import (
    DEFAULT_POLICY,
    MeteringPolicy,
    StaticGridIntensity,
    UsageTotals,
    meter_samples,
)
from oracle.telemetry.samples import GpuInfo, read_trace_csv


class MeterError(click.ClickException):
    """A one-line error and exit status 2, no traceback."""

    exit_code = 2


def _sidecar_gpu(trace: Path) -> dict[str, Any] | None:
    """The ``static`` facts of ``TRACE.json`` beside the CSV, if there is one."""
    sidecar = trace.with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        static = json.loads(sidecar.read_text()).get("static", {})
    except (OSError, ValueError, AttributeError) as exc:
        raise MeterError(f"{sidecar}: not a readable trace description: {exc}") from None
    return static if isinstance(static, dict) else None


def _gpu_info(trace: Path, power_limit_mw: int | None) -> GpuInfo:
    static = _sidecar_gpu(trace) or {}
    if power_limit_mw is None:
        power_limit_mw = static.get("power_limit_mw")
        if type(power_limit_mw) is not int:
            raise MeterError(
                f"power limit of the GPU in {trace} is unknown: pass --power-limit-mw"
                f" (or put a {trace.with_suffix('.json').name} with static.power_limit_mw"
                " beside it)"
            )
    return GpuInfo(
        index=0,
        uuid=str(static.get("uuid_prefix", "GPU-unknown")),
        name=str(static.get("name", "unknown")),
        power_limit_mw=power_limit_mw,
    )


def meter_result(
    totals: UsageTotals, gpu: GpuInfo, trace: Path, region: str | None, g_per_kwh: int,
    policy: MeteringPolicy,
) -> dict[str, Any]:
    """The JSON object ``gpurent meter --json`` prints: integers only."""
    return {
        "trace": str(trace),
        "gpu": {"name": gpu.name, "uuid": gpu.uuid, "power_limit_mw": gpu.power_limit_mw},
        "samples": totals.sample_count,
        "period_start_ms": totals.period_start_ms,
        "period_end_ms": totals.period_end_ms,
        "available_gpu_seconds": totals.available_gpu_seconds,
        "available_gpu_milliseconds": totals.available_gpu_milliseconds,
        "busy_gpu_seconds": totals.busy_gpu_seconds,
        "busy_gpu_milliseconds": totals.busy_gpu_milliseconds,
        "energy_joules": totals.energy_millijoules // 1000,
        "energy_millijoules": totals.energy_millijoules,
        "integrated_energy_millijoules": totals.integrated_energy_millijoules,
        "carbon_grams": totals.carbon_milligrams // 1000,
        "carbon_milligrams": totals.carbon_milligrams,
        "grid_region": region,
        "grid_intensity_g_per_kwh": g_per_kwh,
        "uptime_bps": totals.uptime_bps,
        "fault_flags": totals.fault_flags,
        "faults": [
            {
                "fault_id": index,
                "kind": fault.kind.name,
                "kind_code": int(fault.kind),
                "gpu": fault.gpu,
                "start_ms": fault.start_ms,
                "end_ms": fault.end_ms,
                "detail": fault.detail,
            }
            for index, fault in enumerate(totals.faults)
        ],
        "policy": asdict(policy),
    }


def _print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"gpurent meter: {result['trace']}", show_header=False)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    rows = [
        ("GPU", f"{result['gpu']['name']} ({result['gpu']['power_limit_mw'] // 1000} W limit)"),
        ("samples", f"{result['samples']}"),
        ("available GPU-seconds", f"{result['available_gpu_seconds']}"),
        ("busy GPU-seconds", f"{result['busy_gpu_seconds']}"),
        ("energy (J)", f"{result['energy_joules']}"),
        ("integrated power (J)", f"{result['integrated_energy_millijoules'] // 1000}"),
        ("carbon (g CO2e)", f"{result['carbon_milligrams'] // 1000}"
                            f".{result['carbon_milligrams'] % 1000:03d}"
                            f" at {result['grid_intensity_g_per_kwh']} g/kWh"
                            f" ({result['grid_region'] or 'given'})"),
        ("uptime (bps)", f"{result['uptime_bps']}"),
        ("faults", f"{len(result['faults'])}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console = Console()
    console.print(table)
    for fault in result["faults"]:
        console.print(f"  [{fault['fault_id']}] {fault['kind']}: {fault['detail']}"
                      f" ({fault['start_ms']} .. {fault['end_ms']} ms)", markup=False)


@click.command("meter")
@click.argument("trace", metavar="TRACE.csv")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--region", default=None,
              help="Grid region (ISO country code or WORLD) for the static intensity table.")
@click.option("--grid-intensity", "grid_intensity", type=uint(32), default=None,
              help="Grid carbon intensity in gCO2e/kWh (instead of --region).")
@click.option("--max-gap-ms", type=uint(32, 1), default=DEFAULT_POLICY.max_gap_ms,
              show_default=True, help="Longest gap between samples that still counts as present.")
@click.option("--every", type=uint(32, 1), default=1, show_default=True,
              help="Meter every Nth row only (10 on a 10 Hz trace: the agent's 1 Hz).")
@click.option("--offset", type=uint(32), default=0, show_default=True,
              help="With --every: start at this row (0-based) of the trace.")
@click.option("--power-limit-mw", type=uint(32, 1), default=None,
              help="GPU power limit; default: static.power_limit_mw of TRACE.json beside the CSV.")
def meter(trace: str, as_json: bool, region: str | None, grid_intensity: int | None,
          max_gap_ms: int, every: int, offset: int, power_limit_mw: int | None) -> None:
    """Meter a telemetry CSV as one GPU for one rental spanning the whole file."""
    if region is not None and grid_intensity is not None:
        raise MeterError("give --region or --grid-intensity, not both")
    path = Path(trace)
    try:
        if grid_intensity is None:
            table = StaticGridIntensity.default()
            grid_intensity = table.g_per_kwh(region)
            region = region.strip().upper() if region else table.default_region
        policy = MeteringPolicy(**{**asdict(DEFAULT_POLICY), "max_gap_ms": max_gap_ms})
        if not path.is_file():
            raise MeterError(f"{trace}: " + ("not a file" if path.exists() else "no such file"))
        gpu = _gpu_info(path, power_limit_mw)
        samples = read_trace_csv(path, gpu=gpu.index)[offset::every]
        if not samples:
            raise MeterError(f"{trace}: no samples in the file")
        totals = meter_samples(samples, [gpu], policy, grid_intensity)
    except (GpurentError, OSError, UnicodeDecodeError, csv.Error) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MeterError(f"{trace}: {message}") from None
    result = meter_result(totals, gpu, path, region, grid_intensity, policy)
    if as_json:
        click.echo(json.dumps(result, indent=None, sort_keys=False))
    else:
        _print_table(result)
