"""Pending cleanups: paths marked for deletion and not yet confirmed gone.

A failed cleanup stays pending (with its error) so it is retried, at the latest at next start.
"""

from __future__ import annotations

import msgspec

from projections.envelope import Envelope
from projections.events import CleanupCompleted, CleanupFailed, CleanupMarked
from projections.handlers import Handlers


class Cleanup(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    spec: CleanupMarked
    marked_seq: int
    failures: int = 0
    last_error: str | None = None


class Cleanups(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    pending: dict[str, Cleanup] = msgspec.field(default_factory=dict)
    completed: int = 0

    def pending_cleanups(self) -> list[Cleanup]:
        """In marking order, so the oldest leftovers are removed first."""
        return list(self.pending.values())

    def _marked(self, seq: int, env: Envelope, ev: CleanupMarked) -> None:
        if ev.path not in self.pending:
            self.pending[ev.path] = Cleanup(spec=ev, marked_seq=seq)

    def _completed(self, seq: int, env: Envelope, ev: CleanupCompleted) -> None:
        if self.pending.pop(ev.path, None) is not None:
            self.completed += 1

    def _failed(self, seq: int, env: Envelope, ev: CleanupFailed) -> None:
        cleanup = self.pending.get(ev.path)
        if cleanup is not None:
            cleanup.failures += 1
            cleanup.last_error = ev.error


HANDLERS: Handlers = {
    CleanupMarked: Cleanups._marked,
    CleanupCompleted: Cleanups._completed,
    CleanupFailed: Cleanups._failed,
}
