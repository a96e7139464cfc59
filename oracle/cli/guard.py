"""The ``gpurent`` root group's last word on every error: one line on stderr, never a traceback.

Exit codes: 0 done; 1 the operation failed (a transaction reverted, the RPC is unreachable, a
node refused, or a bug: an "internal error"); 2 the command or its input is wrong (a usage
error, a bad value, a missing deployment or key); 130 interrupted. ``GPURENT_DEBUG=1`` lets
unexpected exceptions through with their traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from oracle.redact import redact


def one_line(text: str) -> str:
    """``text`` with its lines joined: an error is one line, however it was written."""
    return " ".join(part.strip() for part in str(text).strip().splitlines() if part.strip())


def usage_line(exc: click.UsageError) -> str:
    """A usage error as one line that names the command's ``--help``."""
    message = one_line(exc.format_message())
    if isinstance(exc, click.NoSuchOption) and exc.option_name[1:2].isdigit():
        message = f"{exc.option_name} is negative: amounts, ids and counts are 0 or more"
    ctx = exc.ctx
    if ctx is not None:
        message += f" (see `{ctx.command_path} --help`)"
    return message


class RootGroup(click.Group):
    """Runs click in non-standalone mode and prints every error itself, as one line."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # a bare group: its help, as click shows it
            click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message(), err=True)
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            _fail(usage_line(exc), exc.exit_code)
        except click.ClickException as exc:
            _fail(one_line(exc.format_message()), exc.exit_code)
        except click.Abort:
            _fail("aborted", 1)
        except (KeyboardInterrupt, EOFError):
            _fail("interrupted", 130)
        except Exception as exc:  # noqa: BLE001  (the point: no traceback reaches a person)
            if os.environ.get("GPURENT_DEBUG"):
                raise
            _fail(f"internal error ({type(exc).__name__}: {one_line(str(exc))[:300]}); this is a bug in gpurent: "
                  "rerun with GPURENT_DEBUG=1 to see where, and report it", 1)
        sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {redact(message)}", err=True)
    sys.exit(code)
