"""Fault points, so tests can stop or break the server at an exact step.

``REWIND_PAUSE_AT``, a comma-separated list of point names (``cleanup.archived``, ...): when
the server reaches one, it creates ``<data dir>/paused/<name>`` and stops there for good, as
if frozen, until the test kills it. ``REWIND_FAIL_AT``: the step raises instead. Unset
(always, in production), a point costs one set lookup.
"""

from __future__ import annotations

import os
from pathlib import Path

import anyio

from eventlog import atomic_write, make_dirs

_POINTS = frozenset(filter(None, os.environ.get("REWIND_PAUSE_AT", "").split(",")))
_FAILURES = frozenset(filter(None, os.environ.get("REWIND_FAIL_AT", "").split(",")))


class InjectedFailureError(RuntimeError):
    """Raised at a point named in REWIND_FAIL_AT."""


async def pause_point(name: str, data_root: Path) -> None:
    if name in _FAILURES:
        raise InjectedFailureError(f"failure injected at {name}")
    if name not in _POINTS:
        return
    marker = data_root / "paused" / name
    make_dirs(marker.parent)
    atomic_write(marker, str(os.getpid()).encode())
    await anyio.sleep_forever()
