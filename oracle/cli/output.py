"""A command's output: one JSON object with ``--json`` (raw integers), else a line or a table
(rich), and progress of slow steps on stderr."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import click

# -- output -------------------------------------------------------------------------------------

def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "to_0x_hex"):
        return value.to_0x_hex()
    return value


def print_json(data: Any) -> None:
    click.echo(json.dumps(_jsonable(data), indent=2, sort_keys=False))


def console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped output keeps whole table rows (rich would fold them to 80 columns).
    width = None if stream.isatty() else 160
    return Console(stderr=stderr, highlight=False, width=width)


@contextmanager
def progress_steps(enabled: bool) -> Iterator[Callable[[str], None]]:
    """Report slow steps on stderr (a rich spinner on a terminal); silent with ``enabled=False``."""
    if not enabled:
        yield lambda message: None
        return
    con = console(stderr=True)
    if not con.is_terminal:
        yield lambda message: con.print(f"- {message}")
        return
    with con.status("starting") as status:
        def step(message: str) -> None:
            status.update(message)
            con.print(f"[dim]-[/dim] {message}")

        yield step


def print_result(chain: Any, out: dict[str, Any], line: str) -> None:
    """A command's outcome: ``out`` as one JSON object with ``--json``, else the one-line ``line``."""
    if chain.as_json:
        print_json(out)
    else:
        click.echo(line)


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]):
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for column in columns:
        t.add_column(column, overflow="fold")
    for row in rows:
        t.add_row(*[str(v) for v in row])
    return t


def kv_table(title: str | None, pairs: Sequence[tuple[str, Any]]):
    from rich.table import Table

    t = Table(title=title, title_justify="left", show_header=False)
    t.add_column("", style="bold")
    t.add_column("", overflow="fold")
    for key, value in pairs:
        t.add_row(key, str(value))
    return t
