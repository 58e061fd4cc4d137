"""The run queue: jobs waiting to be picked, ordered by the seq of their ``job.enqueued``.

Seqs only grow, so appending to an insertion-ordered dict keeps it sorted: the head is the
next runnable job in O(1) and nothing is ever re-sorted, at replay or at restart.
"""

from __future__ import annotations

import msgspec

from projections.envelope import Envelope
from projections.events import (
    TERMINAL_EVENTS,
    BatchFormed,
    JobBatched,
    JobDeleted,
    JobEnqueued,
    JobPreparing,
    LockAcquired,
    WaitStarted,
)
from projections.handlers import Handlers, HasJobId


class Queue(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    entries: dict[str, int] = msgspec.field(default_factory=dict)
    """job id -> seq of its ``job.enqueued``, ascending."""

    def next_runnable(self) -> str | None:
        return next(iter(self.entries), None)

    def position(self, job_id: str) -> int | None:
        """1-based place in the queue, or None when the job is not queued."""
        if job_id not in self.entries:
            return None
        for place, queued in enumerate(self.entries, start=1):
            if queued == job_id:
                return place
        raise AssertionError("unreachable: membership was checked")

    def _enqueued(self, seq: int, env: Envelope, ev: JobEnqueued) -> None:
        entries = self.entries
        entries.pop(ev.job_id, None)
        entries[ev.job_id] = seq

    def _leave(self, seq: int, env: Envelope, ev: HasJobId) -> None:
        """Shared by every event whose ``job_id`` has been picked, ended or deleted."""
        self.entries.pop(ev.job_id, None)

    def _batch_formed(self, seq: int, env: Envelope, ev: BatchFormed) -> None:
        for job_id in ev.job_ids:
            self.entries.pop(job_id, None)


HANDLERS: Handlers = {
    JobEnqueued: Queue._enqueued,
    BatchFormed: Queue._batch_formed,
    **dict.fromkeys(
        (WaitStarted, JobBatched, JobPreparing, LockAcquired, JobDeleted, *TERMINAL_EVENTS),
        Queue._leave,
    ),
}
