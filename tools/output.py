"""Printing for the CLI: JSON for machines, rich for people, errors as one line on stderr."""

from __future__ import annotations

import sys
from typing import Any

import msgspec
from rich.console import Console

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


def emit_json(value: Any) -> None:
    """One JSON document on one line of stdout."""
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")


def fail(message: str) -> None:
    errors.print(f"rewind: error: {message}", markup=False, soft_wrap=True)
