"""The demo's options, result, error and progress display (no chain, no processes)."""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from oracle.errors import GpurentError
from oracle.traces import TRACE_TRAIN

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TRACE = TRACE_TRAIN
GPU_MODEL = "NVIDIA H100 80GB HBM3"

DEPLOYER, PROVIDER, RENTER = 0, 1, 2


START_CHALLENGE_MARGIN_S = 10.0  # the nodes learn the rental and issue its start challenge within this


def speed_to_count_the_start_challenge(trace: Path, most: float) -> float:
    """The fastest replay speed, at most ``most``, at which the replay still runs when the dev start
    challenge falls due (every node has judged it: commit deadline, open window, telemetry grace),
    so that a report the nodes settle counts it on chain. A faster replay ends before that: the
    nodes pass the challenge, but no report's period reaches its due time (docs/protocol.md)."""
    from oracle.proof.params import DEV_PROFILE_NAME, profile_for
    from oracle.telemetry.sources.replay import ReplaySource

    duration_s = ReplaySource(trace, speed=1.0, period_ms=1000).duration_ms / 1000
    dev = profile_for(DEV_PROFILE_NAME)
    due_s = (dev.start.commit_deadline_ms + dev.open_window_ms + dev.telemetry_grace_ms) / 1000
    return max(1.0, min(most, round(duration_s / (due_s + START_CHALLENGE_MARGIN_S), 2)))


class DemoError(GpurentError, RuntimeError):
    """A demo step failed; the message names the step and where its logs are."""


@dataclass
class DemoOptions:
    state_dir: Path = REPO_ROOT / "var" / "demo"
    trace: Path = DEFAULT_TRACE
    speed: float = 8.0
    source: str = "auto"  # auto | replay | nvml
    nvml_seconds: float = 30.0
    nodes: int = 3
    threshold: int = 2
    stop_node_after_s: float | None = None  # stop one node mid-rental (resilience demo)
    settle_interval_s: float = 2.0  # each node's settlement round (node setting settle_interval_s)
    submit_stagger_s: float = 1.0  # node rank x this between finding a quorum and sending it
    price_per_gpu_hour: str = "3.00"
    price_per_kwh: str = "0.20"
    region: str = "SE"
    stake: str = "2000"
    budget: str = "5"
    challenges: bool = True  # proof of GPU at the dev size (numpy agent; docs/protocol.md)
    cheat: bool = False      # the agent answers every challenge wrongly (dev chain only)
    container: bool = True   # the renter's command in a container via the provider daemon (oracle.demo.container)
    keep_running: bool = False
    fast_kdf: bool = False  # cheap keystore KDF (tests)


@dataclass
class DemoResult:
    summary: dict[str, Any]
    transactions: dict[str, list[str]]
    wall_s: float
    rpc_url: str
    deployments: Path
    cleanup: Callable[[], Any] | None = None  # stops the chain and nodes left by keep_running


class Ui:
    """Progress for a person (rich, on stderr) or nothing (``--json``)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.t0 = time.monotonic()
        self.console = None
        if enabled:
            from rich.console import Console

            # Piped output keeps whole lines (rich would fold them to 80 columns).
            self.console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)

    def step(self, title: str, command: str | None = None) -> None:
        if self.console is None:
            return
        elapsed = time.monotonic() - self.t0
        self.console.print(f"[dim]{elapsed:6.1f}s[/dim] [bold cyan]▸[/bold cyan] {title}")
        if command:
            self.console.print(f"         [dim]$ {command}[/dim]")

    def note(self, text: str) -> None:
        if self.console is not None:
            self.console.print(f"         {text}")

    @contextlib.contextmanager
    def bar(self, title: str, total: float):
        if self.console is None:
            yield lambda completed, description=None: None
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("         {task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TimeElapsedColumn(), console=self.console, transient=False) as progress:
            task = progress.add_task(title, total=total)

            def update(completed: float, description: str | None = None) -> None:
                progress.update(task, completed=completed, **({"description": description} if description else {}))

            yield update
