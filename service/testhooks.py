"""Pause points, so crash tests can SIGKILL the server at an exact step of an effect.

Set ``REWIND_PAUSE_AT`` to a comma-separated list of point names (``cleanup.archived``, ...):
when the server reaches one, it creates ``<data dir>/paused/<name>`` and stops there for
good, as if frozen, until the test kills it. Unset (always, in production), a pause point
costs one dict lookup.
"""

from __future__ import annotations

import os
from pathlib import Path

import anyio

from eventlog import atomic_write, fsutil

_POINTS = frozenset(filter(None, os.environ.get("REWIND_PAUSE_AT", "").split(",")))


async def pause_point(name: str, data_root: Path) -> None:
    if name not in _POINTS:
        return
    marker = data_root / "paused" / name
    fsutil.make_dirs(marker.parent)
    atomic_write(marker, str(os.getpid()).encode())
    await anyio.sleep_forever()
