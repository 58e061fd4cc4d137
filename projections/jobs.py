"""Jobs: their specification, where they are in the lifecycle, and what they left behind.

Lifecycle: created -> queued -> waiting / batched -> preparing -> running -> one of the terminal
statuses. Transitions are applied literally, whatever the current status: judging whether a
sequence was legal is the invariant checker's job, so a replay never stops half-way.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

from projections.envelope import Envelope
from projections.events import (
    BatchFormed,
    JobBatched,
    JobCancelled,
    JobCancelRequested,
    JobCompleted,
    JobCreated,
    JobDeleted,
    JobEnqueued,
    JobFailed,
    JobFileStaged,
    JobFileUnstaged,
    JobLost,
    JobOutputCheckpoint,
    JobPreparing,
    JobProcessStarted,
    JobReattached,
    JobTimedOut,
    JobWorkspaceCreated,
    WaitStarted,
)
from projections.handlers import Handlers

JobStatus = Literal[
    "created",
    "queued",
    "waiting",
    "batched",
    "preparing",
    "running",
    "completed",
    "failed",
    "timed_out",
    "cancelled",
    "lost",
]

TERMINAL_STATUSES: Final = frozenset({"completed", "failed", "timed_out", "cancelled", "lost"})


class ProcessIdentity(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Enough to tell, after a restart, whether a live pid is still our agent."""

    pid: int
    start_time: float
    boot_id: str
    output_path: str
    heartbeat_path: str


class Job(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    spec: JobCreated
    created_seq: int
    created_ts: float
    status: JobStatus = "created"
    files: dict[str, JobFileStaged] = msgspec.field(default_factory=dict)
    enqueued_seq: int | None = None
    batch_id: str | None = None
    workspace: str | None = None
    process: ProcessIdentity | None = None
    started_ts: float | None = None
    ended_ts: float | None = None
    output_offset: int = 0
    exit_code: int | None = None
    reason: str | None = None
    cancel_requested: bool = False
    reattach_count: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class Jobs(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    by_id: dict[str, Job] = msgspec.field(default_factory=dict)
    running: dict[str, None] = msgspec.field(default_factory=dict)
    """Index of jobs with status running, in start order: recovery walks it at every boot."""
    deleted: dict[str, int] = msgspec.field(default_factory=dict)
    """Tombstones (job id -> seq of deletion) so the API can answer 410 rather than 404."""

    def get(self, job_id: str) -> Job | None:
        return self.by_id.get(job_id)

    def running_processes(self) -> list[tuple[str, ProcessIdentity | None]]:
        """Running jobs with the identity recovery needs to re-attach or declare them lost."""
        by_id = self.by_id
        return [(job_id, by_id[job_id].process) for job_id in self.running]

    def _created(self, seq: int, env: Envelope, ev: JobCreated) -> None:
        self.by_id[ev.job_id] = Job(spec=ev, created_seq=seq, created_ts=env.ts)

    def _file_staged(self, seq: int, env: Envelope, ev: JobFileStaged) -> None:
        job = self.by_id.get(ev.job_id)
        if job is not None:
            job.files[ev.name] = ev

    def _file_unstaged(self, seq: int, env: Envelope, ev: JobFileUnstaged) -> None:
        job = self.by_id.get(ev.job_id)
        if job is not None:
            job.files.pop(ev.name, None)

    def _enqueued(self, seq: int, env: Envelope, ev: JobEnqueued) -> None:
        job = self.by_id.get(ev.job_id)
        if job is not None:
            job.status = "queued"
            job.enqueued_seq = seq

    def _wait_started(self, seq: int, env: Envelope, ev: WaitStarted) -> None:
        job = self.by_id.get(ev.job_id)
        if job is not None:
            job.status = "waiting"

    def _batch_formed(self, seq: int, env: Envelope, ev: BatchFormed) -> None:
        for job_id in ev.job_ids:
            job = self.by_id.get(job_id)
            if job is not None:
                job.status = "batched"
                job.batch_id = ev.batch_id

    def _batched(self, seq: int, env: Envelope, ev: JobBatched) -> None:
        job = self.by_id.get(ev.job_id)
        if job is not None:
            job.status = "batched"
            job.batch_id = ev.batch_id

    def _preparing(self, seq: int, env: Envelope, ev: JobPreparing) -> None:
        job = self.by_id.get(ev.job_id)
        if job is not None:
            job.status = "preparing"

    def _workspace_created(self, seq: int, env: Envelope, ev: JobWorkspaceCreated) -> None:
        job = self.by_id.get(ev.job_id)
        if job is not None:
            job.workspace = ev.path

    def _process_started(self, seq: int, env: Envelope, ev: JobProcessStarted) -> None:
        job = self.by_id.get(ev.job_id)
        if job is not None:
            job.status = "running"
            job.process = ProcessIdentity(
                ev.pid, ev.process_start_time, ev.boot_id, ev.output_path, ev.heartbeat_path
            )
            job.started_ts = env.ts
            self.running[ev.job_id] = None

    def _reattached(self, seq: int, env: Envelope, ev: JobReattached) -> None:
        job = self.by_id.get(ev.job_id)
        if job is not None:
            job.reattach_count += 1

    def _checkpoint(self, seq: int, env: Envelope, ev: JobOutputCheckpoint) -> None:
        job = self.by_id.get(ev.job_id)
        if job is not None:
            job.output_offset = ev.offset

    def _cancel_requested(self, seq: int, env: Envelope, ev: JobCancelRequested) -> None:
        job = self.by_id.get(ev.job_id)
        if job is not None:
            job.cancel_requested = True

    def _end(self, job_id: str, ts: float, status: JobStatus) -> Job | None:
        job = self.by_id.get(job_id)
        if job is not None:
            job.status = status
            job.ended_ts = ts
            self.running.pop(job_id, None)
        return job

    def _completed(self, seq: int, env: Envelope, ev: JobCompleted) -> None:
        job = self._end(ev.job_id, env.ts, "completed")
        if job is not None:
            job.exit_code = ev.exit_code

    def _failed(self, seq: int, env: Envelope, ev: JobFailed) -> None:
        job = self._end(ev.job_id, env.ts, "failed")
        if job is not None:
            job.reason = ev.reason

    def _timed_out(self, seq: int, env: Envelope, ev: JobTimedOut) -> None:
        self._end(ev.job_id, env.ts, "timed_out")

    def _cancelled(self, seq: int, env: Envelope, ev: JobCancelled) -> None:
        self._end(ev.job_id, env.ts, "cancelled")

    def _lost(self, seq: int, env: Envelope, ev: JobLost) -> None:
        job = self._end(ev.job_id, env.ts, "lost")
        if job is not None:
            job.reason = ev.reason

    def _deleted(self, seq: int, env: Envelope, ev: JobDeleted) -> None:
        if self.by_id.pop(ev.job_id, None) is not None:
            self.running.pop(ev.job_id, None)
            self.deleted[ev.job_id] = seq


HANDLERS: Handlers = {
    JobCreated: Jobs._created,
    JobFileStaged: Jobs._file_staged,
    JobFileUnstaged: Jobs._file_unstaged,
    JobEnqueued: Jobs._enqueued,
    WaitStarted: Jobs._wait_started,
    BatchFormed: Jobs._batch_formed,
    JobBatched: Jobs._batched,
    JobPreparing: Jobs._preparing,
    JobWorkspaceCreated: Jobs._workspace_created,
    JobProcessStarted: Jobs._process_started,
    JobReattached: Jobs._reattached,
    JobOutputCheckpoint: Jobs._checkpoint,
    JobCancelRequested: Jobs._cancel_requested,
    JobCompleted: Jobs._completed,
    JobFailed: Jobs._failed,
    JobTimedOut: Jobs._timed_out,
    JobCancelled: Jobs._cancelled,
    JobLost: Jobs._lost,
    JobDeleted: Jobs._deleted,
}
