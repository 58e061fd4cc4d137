"""Jobs: their specification, their place in the lifecycle, and the indexes derived from it.

A job's status and its queue membership have one source: ``_move``, the only code that
changes a status, also keeps every index (run queue, wait queues, active slots, jobs with a
process, jobs per repository) in step with it. So a job is queued exactly when it is in the
run queue, waiting exactly when it is in its repository's wait queue, and so on.

The fold applies facts and judges nothing, but an event that ``decide`` could never have
produced (an illegal transition, a dispatch out of FIFO order or beyond capacity) is recorded
as an anomaly instead of being silently accepted: ``rewind log verify --deep`` reports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, NamedTuple

import msgspec

from projections import stats
from projections.envelope import Envelope
from projections.events import (
    Event,
    Idempotency,
    JobCancelled,
    JobCancelRequested,
    JobCompleted,
    JobCreated,
    JobDeleted,
    JobDeleteRequested,
    JobEnqueued,
    JobFailed,
    JobFileStaged,
    JobLaunching,
    JobLost,
    JobProcessStarted,
    JobPurged,
    JobReattached,
    JobTimedOut,
    JobWaiting,
    JobWorkspaceCreated,
    tag_of,
)
from projections.handlers import Handlers
from projections.lifecycle import ACTIVE, TERMINAL, TRANSITIONS, JobStatus

if TYPE_CHECKING:
    from projections.state import State


class ProcessIdentity(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Enough to tell, after a restart, whether a live pid is still our agent."""

    pid: int
    start_time: float
    boot_id: str


class Job(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    spec: JobCreated
    created_seq: int
    status: JobStatus = "created"
    files: dict[str, JobFileStaged] = msgspec.field(default_factory=dict)
    enqueued_seq: int | None = None
    enqueued_at: float | None = None
    batch_id: str | None = None
    workspace: str | None = None
    run_dir: str | None = None
    process: ProcessIdentity | None = None
    started_at: float | None = None
    deadline: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    reason: str | None = None
    reattached: int = 0
    deleted_at: float | None = None
    cleanup_marked: bool = False
    """Its workspace was marked for cleanup (at most once; its run directory apart)."""
    seqs: list[int] = msgspec.field(default_factory=list)
    """Every seq that concerns this job (its callbacks, cleanups, containers included), so
    its history is answered from the state without scanning the log."""

    @property
    def job_id(self) -> str:
        return self.spec.job_id

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


class EarlierCreate(NamedTuple):
    """A job an earlier create made with the same Idempotency-Key."""

    job_id: str
    same_body: bool
    """The same request again (answered with that job); otherwise a conflict."""


class Jobs(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    by_id: dict[str, Job] = msgspec.field(default_factory=dict)
    queue: dict[str, int] = msgspec.field(default_factory=dict)
    """The run queue: job id -> seq of its ``job.enqueued``. Seqs only grow, so insertion
    order is FIFO order and the head is the next job to dispatch, in O(1)."""
    waits: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    """repo -> (job id -> seq of its ``job.waiting``), FIFO like the run queue."""
    active: dict[str, None] = msgspec.field(default_factory=dict)
    """Jobs holding a concurrency slot (waiting, preparing, running, stopping)."""
    attached: dict[str, None] = msgspec.field(default_factory=dict)
    """Unfinished jobs that launched (or are launching) an agent process: recovery walks it."""
    by_repo: dict[str, dict[str, None]] = msgspec.field(default_factory=dict)
    """repo -> its unfinished jobs (a repository in use cannot be unregistered)."""
    idempotency: dict[str, tuple[str, str]] = msgspec.field(default_factory=dict)
    """Idempotency key hash -> (job id, body hash): "same key, other body" is decidable."""
    purged: dict[str, int] = msgspec.field(default_factory=dict)
    """Tombstones of purged jobs: job id -> seq of the purge."""

    def get(self, job_id: str) -> Job | None:
        return self.by_id.get(job_id)

    def queue_position(self, job_id: str) -> int | None:
        """1-based place in the run queue, or None when the job is not queued."""
        if job_id not in self.queue:
            return None
        for place, queued in enumerate(self.queue, start=1):
            if queued == job_id:
                return place
        raise AssertionError("unreachable: membership was checked")

    def next_queued(self) -> str | None:
        return next(iter(self.queue), None)

    def waiters(self, repo: str) -> list[str]:
        return list(self.waits.get(repo, ()))

    def count(self, status: JobStatus) -> int:
        return sum(1 for job in self.by_id.values() if job.status == status)

    def created_with(self, key: Idempotency) -> EarlierCreate | None:
        """The job an earlier create with this key made, if any: the one lookup of a key,
        for ``decide`` (which refuses another body and ignores the same one) and for the API
        (which answers a repeated request at once, storing and validating nothing)."""
        known = self.idempotency.get(key.key_hash)
        if known is None:
            return None
        job_id, body_hash = known
        return EarlierCreate(job_id, body_hash == key.body_hash)


def touch(state: State, job_id: str | None, seq: int) -> Job | None:
    """The job an event concerns, with the event's seq added to its history."""
    if job_id is None:
        return None
    job = state.jobs.by_id.get(job_id)
    if job is not None:
        job.seqs.append(seq)
    return job


_ROWS: Final = TRANSITIONS
"""Read directly (not through ``next_status``) on the hot path: a replay makes this lookup
for most events, and a function call costs as much as the lookup itself."""


def move(state: State, job: Job, event: type[Event], seq: int, at: float | None = None) -> bool:
    """Apply the lifecycle table to one job; the only place a status changes.

    ``at`` is the event's time of the transition, given for the ones that start or end a run:
    the statistics are kept here too, so no ending can be counted twice or missed.
    """
    old = job.status
    new = _ROWS[event].get(old)
    if new is None:
        state.note(f"seq {seq}: {tag_of(event)} cannot happen to job {job.job_id!r} ({old})")
        return False
    if new == old:
        return True
    jobs = state.jobs
    job_id = job.spec.job_id
    active_now = new in ACTIVE
    active_before = old in ACTIVE
    if old == "queued":
        if active_now and next(iter(jobs.queue), None) != job_id:
            state.note(f"seq {seq}: job {job_id!r} dispatched ahead of {jobs.next_queued()!r}")
        del jobs.queue[job_id]
    elif old == "waiting":
        waits = jobs.waits[job.spec.repo]
        del waits[job_id]
        if not waits:
            del jobs.waits[job.spec.repo]
    if new == "queued":
        jobs.queue[job_id] = seq
    elif new == "waiting":
        waiting = jobs.waits.get(job.spec.repo)
        if waiting is None:
            waiting = jobs.waits[job.spec.repo] = {}
        waiting[job_id] = seq
    if active_now and not active_before:
        if len(jobs.active) >= state.server.settings.max_concurrent:
            state.note(
                f"seq {seq}: job {job_id!r} dispatched with {len(jobs.active)} jobs active "
                f"(max_concurrent {state.server.settings.max_concurrent})"
            )
        jobs.active[job_id] = None
    elif active_before and not active_now:
        del jobs.active[job_id]
    if new == "running" and at is not None:
        stats.job_started(state, job, at)
    if new in TERMINAL:
        job.ended_at = at
        stats.job_ended(state, job, new)
        jobs.attached.pop(job_id, None)
        repo_jobs = jobs.by_repo.get(job.spec.repo)
        if repo_jobs is not None:
            repo_jobs.pop(job_id, None)
            if not repo_jobs:
                del jobs.by_repo[job.spec.repo]
    job.status = new
    return True


def _job(state: State, job_id: str, seq: int) -> Job | None:
    """``touch`` for events that must name a known job (inlined: it runs for most events)."""
    job = state.jobs.by_id.get(job_id)
    if job is None:
        state.note(f"seq {seq}: event about unknown job {job_id!r}")
        return None
    job.seqs.append(seq)
    return job


def _created(state: State, seq: int, env: Envelope, ev: JobCreated) -> None:
    jobs = state.jobs
    if ev.job_id in jobs.by_id or ev.job_id in jobs.purged:
        state.note(f"seq {seq}: job {ev.job_id!r} created twice")
        return
    if ev.repo not in state.repos.by_name:
        state.note(f"seq {seq}: job {ev.job_id!r} created for unknown repository {ev.repo!r}")
    if ev.owner not in state.users.by_id:
        state.note(f"seq {seq}: job {ev.job_id!r} created by unknown user {ev.owner!r}")
    jobs.by_id[ev.job_id] = Job(spec=ev, created_seq=seq, seqs=[seq])
    repo_jobs = jobs.by_repo.get(ev.repo)
    if repo_jobs is None:
        repo_jobs = jobs.by_repo[ev.repo] = {}
    repo_jobs[ev.job_id] = None
    if ev.idempotency is not None:
        _index_key(state, ev.job_id, ev.idempotency, seq)


def _index_key(state: State, job_id: str, key: Idempotency, seq: int) -> None:
    if key.key_hash in state.jobs.idempotency:
        state.note(f"seq {seq}: idempotency key of job {job_id!r} already used")
        return
    state.jobs.idempotency[key.key_hash] = (job_id, key.body_hash)


def _file_staged(state: State, seq: int, env: Envelope, ev: JobFileStaged) -> None:
    job = _job(state, ev.job_id, seq)
    if job is not None and move(state, job, JobFileStaged, seq):
        job.files[ev.name] = ev


def _enqueued(state: State, seq: int, env: Envelope, ev: JobEnqueued) -> None:
    job = _job(state, ev.job_id, seq)
    if job is not None and move(state, job, JobEnqueued, seq):
        job.enqueued_seq = seq
        job.enqueued_at = ev.at


def _waiting(state: State, seq: int, env: Envelope, ev: JobWaiting) -> None:
    job = _job(state, ev.job_id, seq)
    if job is not None:
        if ev.repo != job.spec.repo:
            state.note(f"seq {seq}: job {ev.job_id!r} waits on {ev.repo!r}, not its repository")
        move(state, job, JobWaiting, seq)


def _workspace_created(state: State, seq: int, env: Envelope, ev: JobWorkspaceCreated) -> None:
    job = _job(state, ev.job_id, seq)
    if job is not None and move(state, job, JobWorkspaceCreated, seq):
        job.workspace = ev.path


def _launching(state: State, seq: int, env: Envelope, ev: JobLaunching) -> None:
    job = _job(state, ev.job_id, seq)
    if job is not None and move(state, job, JobLaunching, seq):
        job.run_dir = ev.run_dir
        state.jobs.attached[ev.job_id] = None


def _process_started(state: State, seq: int, env: Envelope, ev: JobProcessStarted) -> None:
    job = _job(state, ev.job_id, seq)
    if job is None:
        return
    if job.run_dir is None:
        state.note(f"seq {seq}: job {ev.job_id!r} started a process without launching")
    if move(state, job, JobProcessStarted, seq, ev.started_at):
        job.process = ProcessIdentity(ev.pid, ev.process_start_time, ev.boot_id)
        job.started_at = ev.started_at
        job.deadline = ev.deadline


def _reattached(state: State, seq: int, env: Envelope, ev: JobReattached) -> None:
    job = _job(state, ev.job_id, seq)
    if job is not None and move(state, job, JobReattached, seq):
        job.reattached += 1


def _stop_requested(
    state: State, seq: int, env: Envelope, ev: JobCancelRequested | JobDeleteRequested
) -> None:
    job = _job(state, ev.job_id, seq)
    if job is not None:
        move(state, job, type(ev), seq)


def _ended(
    state: State,
    seq: int,
    ev: JobCompleted | JobFailed | JobTimedOut | JobCancelled | JobLost,
) -> Job | None:
    job = state.jobs.by_id.get(ev.job_id)
    if job is None:
        state.note(f"seq {seq}: event about unknown job {ev.job_id!r}")
        return None
    job.seqs.append(seq)
    return job if move(state, job, type(ev), seq, ev.at) else None


def _completed(state: State, seq: int, env: Envelope, ev: JobCompleted) -> None:
    job = _ended(state, seq, ev)
    if job is not None:
        job.exit_code = 0


def _failed(state: State, seq: int, env: Envelope, ev: JobFailed) -> None:
    job = _ended(state, seq, ev)
    if job is not None:
        job.exit_code = ev.exit_code
        job.reason = ev.reason


def _timed_out(state: State, seq: int, env: Envelope, ev: JobTimedOut) -> None:
    job = _ended(state, seq, ev)
    if job is not None:
        job.reason = "timed out"


def _cancelled(state: State, seq: int, env: Envelope, ev: JobCancelled) -> None:
    job = _ended(state, seq, ev)
    if job is not None:
        job.reason = "cancelled"


def _lost(state: State, seq: int, env: Envelope, ev: JobLost) -> None:
    job = _ended(state, seq, ev)
    if job is not None:
        job.reason = ev.reason


def _deleted(state: State, seq: int, env: Envelope, ev: JobDeleted) -> None:
    job = _job(state, ev.job_id, seq)
    if job is None or not move(state, job, JobDeleted, seq):
        return
    if job.deleted_at is not None:
        state.note(f"seq {seq}: job {ev.job_id!r} deleted twice")
    job.deleted_at = ev.at


def _purged(state: State, seq: int, env: Envelope, ev: JobPurged) -> None:
    job = _job(state, ev.job_id, seq)
    if job is None or not move(state, job, JobPurged, seq):
        return
    if job.deleted_at is None:
        state.note(f"seq {seq}: job {ev.job_id!r} purged without being deleted")
    jobs = state.jobs
    del jobs.by_id[ev.job_id]
    jobs.purged[ev.job_id] = seq
    if job.spec.idempotency is not None:
        jobs.idempotency.pop(job.spec.idempotency.key_hash, None)


HANDLERS: Handlers = {
    JobCreated: _created,
    JobFileStaged: _file_staged,
    JobEnqueued: _enqueued,
    JobWaiting: _waiting,
    JobWorkspaceCreated: _workspace_created,
    JobLaunching: _launching,
    JobProcessStarted: _process_started,
    JobReattached: _reattached,
    JobCancelRequested: _stop_requested,
    JobDeleteRequested: _stop_requested,
    JobCompleted: _completed,
    JobFailed: _failed,
    JobTimedOut: _timed_out,
    JobCancelled: _cancelled,
    JobLost: _lost,
    JobDeleted: _deleted,
    JobPurged: _purged,
}
