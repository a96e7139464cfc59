"""Click parameter types that refuse a bad value while parsing (exit 2, one line), so that nothing
out of range for the contract's types ever reaches a transaction.

Token amounts are checked twice: their shape here (a finite, non-negative number, above zero where
the contract refuses zero), their precision and width once the token's decimals are known
(:func:`oracle.cli.common.parse_amount` with ``max_units``).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import click

UINT16_MAX = 2**16 - 1
UINT32_MAX = 2**32 - 1
UINT72_MAX = 2**72 - 1
UINT96_MAX = 2**96 - 1
UINT256_MAX = 2**256 - 1


def uint(bits: int, minimum: int = 0, maximum: int | None = None) -> click.IntRange:
    """An integer that fits ``uint<bits>`` (and ``[minimum, maximum]``)."""
    top = 2**bits - 1 if maximum is None else min(maximum, 2**bits - 1)
    return click.IntRange(minimum, top)


ID = uint(256, 1)  # offer and rental ids


class TokenAmount(click.ParamType):
    """A token amount in token units (``12.5``); the text is kept, the token's decimals decide the rest."""

    name = "AMOUNT"

    def __init__(self, *, positive: bool = True) -> None:
        self.positive = positive

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        text = str(value).strip().replace("_", "").replace(",", "")
        try:
            number = Decimal(text)
        except InvalidOperation:
            self.fail(f"{value!r} is not an amount in token units (write e.g. 12.5)", param, ctx)
        if not number.is_finite():
            self.fail(f"{value!r} is not a finite amount", param, ctx)
        if number < 0:
            self.fail(f"{value!r} is negative; give an amount above 0", param, ctx)
        if self.positive and number == 0:
            self.fail("must be above 0", param, ctx)
        if number.adjusted() > 60:
            self.fail(f"{value!r} is far above any token supply", param, ctx)
        return text


AMOUNT = TokenAmount()
AMOUNT_OR_ZERO = TokenAmount(positive=False)


class FiniteFloat(click.ParamType):
    """A finite float in ``[minimum, maximum]`` (click's FloatRange lets nan through)."""

    name = "NUMBER"

    def __init__(self, minimum: float | None = None, maximum: float | None = None, *, min_open: bool = False) -> None:
        self.minimum, self.maximum, self.min_open = minimum, maximum, min_open

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        if isinstance(value, float):
            number = value
        else:
            try:
                number = float(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        low, high = self.minimum, self.maximum
        if low is not None and (number < low or (self.min_open and number == low)):
            self.fail(f"{value} must be {'above' if self.min_open else 'at least'} {low:g}", param, ctx)
        if high is not None and number > high:
            self.fail(f"{value} must be at most {high:g}", param, ctx)
        return number


class Name32(click.ParamType):
    """A non-empty name that fits ``bytes32`` as UTF-8 (GPU model, region)."""

    name = "NAME"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        text = str(value).strip()
        if not text:
            self.fail("must not be empty", param, ctx)
        if len(text.encode()) > 32:
            self.fail(f"{text!r} is longer than 32 bytes", param, ctx)
        return text


NAME32 = Name32()


class Url(click.ParamType):
    """An ``http(s)://host[:port][/path]`` URL."""

    name = "URL"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        text = str(value).strip()
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            self.fail(f"{value!r} is not a URL (write e.g. http://127.0.0.1:8700)", param, ctx)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.fail(f"{value!r} is not an http(s) URL with a host (write e.g. http://127.0.0.1:8700)", param, ctx)
        if port == 0:
            self.fail(f"{value!r} has port 0", param, ctx)
        return text.rstrip("/")


URL = Url()

_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)$")


class Host(click.ParamType):
    """A listen address: a host name, an IPv4 or an IPv6 address."""

    name = "HOST"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        text = str(value).strip()
        if not _HOST.match(text):
            self.fail(f"{value!r} is not a host name or IP address (e.g. 127.0.0.1 or 0.0.0.0)", param, ctx)
        return text


HOST = Host()


class TextFile(click.Path):
    """An existing, non-empty UTF-8 text file (a config, a trace), refused while parsing if not."""

    name = "FILE"

    def __init__(self) -> None:
        from pathlib import Path

        super().__init__(exists=True, dir_okay=False, path_type=Path)

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        path = super().convert(value, param, ctx)
        try:
            with open(path, "rb") as fh:
                head = fh.read(65_536)
        except OSError as exc:
            self.fail(f"cannot read {path}: {exc.strerror or exc}", param, ctx)
        if not head.strip():
            self.fail(f"{path} is empty", param, ctx)
        if b"\0" in head:
            self.fail(f"{path} is a binary file, not text", param, ctx)
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # not just a character cut at the 64 KiB boundary
                self.fail(f"{path} is not UTF-8 text (byte {exc.start})", param, ctx)
        return path


TEXT_FILE = TextFile()


class TraceFile(TextFile):
    """A telemetry CSV the replay can read (at least one sample), refused while parsing if not."""

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        path = super().convert(value, param, ctx)
        from oracle.errors import GpurentError
        from oracle.telemetry.samples import iter_trace_csv

        try:
            first = next(iter(iter_trace_csv(path)), None)
        except (GpurentError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            self.fail(f"{path} is not a telemetry CSV ({' '.join(str(exc).split())[:160]})", param, ctx)
        if first is None:
            self.fail(f"{path} holds no samples", param, ctx)
        return path


TRACE_FILE = TraceFile()
