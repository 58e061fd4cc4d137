"""Printing for the CLI: JSON for machines, rich for people, errors as one line on stderr."""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO, cast

import msgspec
from rich.console import Console

console = Console(highlight=False, soft_wrap=True)
"""soft_wrap: a line is never folded at the terminal width, so `grep` sees it whole."""
errors = Console(stderr=True, highlight=False, soft_wrap=True)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def emit_json(value: Any) -> None:
    """One JSON document on one line of stdout."""
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")


def fail(message: str) -> None:
    errors.print(f"rewind: error: {message}", markup=False)


def warn(message: str) -> None:
    """Something the operator must know (damage met), while the command goes on."""
    errors.print(f"rewind: warning: {message}", markup=False)


def note(message: str) -> None:
    """The command did something other than literally asked (a range clamped to the log)."""
    errors.print(f"rewind: note: {message}", markup=False)


def utc(ts: float) -> str:
    """A wall-clock stamp as ISO-8601 UTC with `Z`, the form `--at` reads back.

    Rounded up to the microsecond: `--at` selects the last event at or before a time, so the
    printed time of an event, pasted into `--at`, selects that event and not the one before.
    """
    moment = _EPOCH + timedelta(microseconds=math.ceil(ts * 1_000_000))
    return moment.isoformat().replace("+00:00", "Z")


class OutputClosedError(Exception):
    """stdout's reader went away (`rewind log dump D | head`). Not an OSError on purpose: typer
    turns an EPIPE OSError into exit 1, which here means "damage found"."""


class _GuardedStdout:
    """sys.stdout, with a write or flush into a closed pipe raised as OutputClosedError.

    One place catches it for every way the commands print (print, sys.stdout.write, rich).
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError as err:
            raise OutputClosedError from err

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError as err:
            raise OutputClosedError from err

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_stdout() -> None:
    sys.stdout = cast(TextIO, _GuardedStdout(sys.stdout))
