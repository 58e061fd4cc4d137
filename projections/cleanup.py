"""Pending cleanups: paths marked for deletion and not yet confirmed gone.

``cleanup.marked`` is durable before anything is deleted; a failed attempt stays pending with
its error and a retry time, so a cleanup is finished at the latest at the next start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from projections import jobs
from projections.envelope import Envelope
from projections.events import CleanupArchived, CleanupCompleted, CleanupFailed, CleanupMarked
from projections.handlers import Handlers

if TYPE_CHECKING:
    from projections.state import State


class Cleanup(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    spec: CleanupMarked
    marked_seq: int
    archive: str | None = None
    failures: int = 0
    last_error: str | None = None
    next_retry_at: float | None = None

    @property
    def path(self) -> str:
        return self.spec.path


class Cleanups(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    pending: dict[str, Cleanup] = msgspec.field(default_factory=dict)
    completed: int = 0

    def due(self, now: float) -> list[Cleanup]:
        """In marking order, so the oldest leftovers go first; failed ones after their delay."""
        return [
            c for c in self.pending.values() if c.next_retry_at is None or c.next_retry_at <= now
        ]


def _pending(state: State, path: str, seq: int, what: str) -> Cleanup | None:
    cleanup = state.cleanup.pending.get(path)
    if cleanup is None:
        state.note(f"seq {seq}: cleanup of {path!r} {what} but it is not pending")
        return None
    jobs.touch(state, cleanup.spec.job_id, seq)
    return cleanup


def _marked(state: State, seq: int, env: Envelope, ev: CleanupMarked) -> None:
    job = jobs.touch(state, ev.job_id, seq)
    if job is not None:
        job.cleanup_marked = True
    if ev.path in state.cleanup.pending:
        state.note(f"seq {seq}: cleanup of {ev.path!r} marked twice")
        return
    state.cleanup.pending[ev.path] = Cleanup(spec=ev, marked_seq=seq)


def _archived(state: State, seq: int, env: Envelope, ev: CleanupArchived) -> None:
    cleanup = _pending(state, ev.path, seq, "archived")
    if cleanup is not None:
        cleanup.archive = ev.archive


def _completed(state: State, seq: int, env: Envelope, ev: CleanupCompleted) -> None:
    if _pending(state, ev.path, seq, "completed") is not None:
        del state.cleanup.pending[ev.path]
        state.cleanup.completed += 1


def _failed(state: State, seq: int, env: Envelope, ev: CleanupFailed) -> None:
    cleanup = _pending(state, ev.path, seq, "failed")
    if cleanup is not None:
        cleanup.failures += 1
        cleanup.last_error = ev.error
        cleanup.next_retry_at = ev.next_retry_at


HANDLERS: Handlers = {
    CleanupMarked: _marked,
    CleanupArchived: _archived,
    CleanupCompleted: _completed,
    CleanupFailed: _failed,
}
