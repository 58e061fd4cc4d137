"""Printing for the CLI: JSON for machines, rich for people, errors as one line on stderr."""

from __future__ import annotations

import sys
from typing import Any

import msgspec
from rich.console import Console

console = Console(highlight=False, soft_wrap=True)
"""soft_wrap: a line is never folded at the terminal width, so `grep` sees it whole."""
errors = Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(value: Any) -> None:
    """One JSON document on one line of stdout."""
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")


def fail(message: str) -> None:
    errors.print(f"rewind: error: {message}", markup=False, soft_wrap=True)
