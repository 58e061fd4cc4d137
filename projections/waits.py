"""Per-repository wait queues: jobs waiting for a repository's lock, FIFO by seq.

``where`` indexes each waiting job's repository so that a job ending while it waits leaves its
queue in O(1); the queues themselves stay the source of truth the invariants inspect.
"""

from __future__ import annotations

import msgspec

from projections.envelope import Envelope
from projections.events import (
    TERMINAL_EVENTS,
    JobDeleted,
    JobPreparing,
    LockAcquired,
    WaitEnded,
    WaitStarted,
)
from projections.handlers import Handlers, HasJobId


class Waits(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    queues: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    """repo -> (job id -> seq of its ``repo.wait-started``), ascending."""
    where: dict[str, str] = msgspec.field(default_factory=dict)
    """job id -> repo it waits on."""

    def waiters(self, repo: str) -> list[str]:
        return list(self.queues.get(repo, ()))

    def next_waiter(self, repo: str) -> str | None:
        return next(iter(self.queues.get(repo, ())), None)

    def _remove(self, repo: str, job_id: str) -> None:
        queue = self.queues.get(repo)
        if queue is not None and queue.pop(job_id, None) is not None:
            if self.where.get(job_id) == repo:
                del self.where[job_id]
            if not queue:
                del self.queues[repo]

    def _started(self, seq: int, env: Envelope, ev: WaitStarted) -> None:
        queue = self.queues.get(ev.repo)
        if queue is None:
            queue = self.queues[ev.repo] = {}
        queue.pop(ev.job_id, None)
        queue[ev.job_id] = seq
        self.where[ev.job_id] = ev.repo

    def _ended(self, seq: int, env: Envelope, ev: WaitEnded | LockAcquired) -> None:
        self._remove(ev.repo, ev.job_id)

    def _left(self, seq: int, env: Envelope, ev: HasJobId) -> None:
        """The job stopped waiting wherever it waited: picked, ended or deleted."""
        repo = self.where.get(ev.job_id)
        if repo is not None:
            self._remove(repo, ev.job_id)


HANDLERS: Handlers = {
    WaitStarted: Waits._started,
    WaitEnded: Waits._ended,
    LockAcquired: Waits._ended,
    **dict.fromkeys((JobPreparing, JobDeleted, *TERMINAL_EVENTS), Waits._left),
}
