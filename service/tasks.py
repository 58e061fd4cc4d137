"""Background work keyed by what it is about, so a reconciler never starts the same effect
twice in one process (one watcher per job, one sender per webhook, ...).

An effect's task is started by the reconciler that sees it due and ends when the effect is
recorded; if it fails, the error is logged and the key is freed, so the next pass retries.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskGroup

log = logging.getLogger("rewind")


class Tasks:
    def __init__(self, group: TaskGroup) -> None:
        self._group = group
        self._running: dict[tuple[str, str], str] = {}

    def running(self, kind: str, key: str) -> bool:
        return (kind, key) in self._running

    def start(
        self, kind: str, key: str, work: Callable[..., Awaitable[object]], *args: object
    ) -> bool:
        """Run ``work(*args)`` unless a task of this kind and key is running; True if so."""
        if (kind, key) in self._running:
            return False
        self._running[(kind, key)] = kind
        self._group.start_soon(self._run, kind, key, work, args, name=f"{kind}:{key}")
        return True

    async def _run(
        self,
        kind: str,
        key: str,
        work: Callable[..., Awaitable[object]],
        args: tuple[object, ...],
    ) -> None:
        try:
            await work(*args)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception:
            log.exception("%s %s failed; it will be retried", kind, key)
        finally:
            self._running.pop((kind, key), None)
