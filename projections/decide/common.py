"""What several deciders share: finding what a command names, a job's ending with everything
that follows from it, and a repository lock's release with its FIFO hand-off.

Every helper works on the state *before* the command's events are applied, and returns events
in an order where every prefix is a consistent state (a terminal event before the callbacks
it makes due, a lock released before its batch ends, and so on).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from projections import naming
from projections.batches import Batch
from projections.errors import conflict, invalid, not_found
from projections.events import (
    BatchEnded,
    BatchFormed,
    CallbackDue,
    CleanupMarked,
    Event,
    JobCancelled,
    JobCompleted,
    JobDeleted,
    JobFailed,
    JobLost,
    JobTimedOut,
    LockReleased,
)
from projections.jobs import Job
from projections.lifecycle import allowed_from
from projections.repos import Repo
from projections.state import State

Ending = JobCompleted | JobFailed | JobTimedOut | JobCancelled | JobLost
ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_env_names(names: Iterable[str]) -> None:
    """Names that go into an agent's environment must be names there."""
    for name in names:
        if not ENV_NAME.fullmatch(name):
            raise invalid("invalid_env", f"{name!r} is not an environment variable name")


def job(state: State, job_id: str) -> Job:
    """The job a command names; deleted jobs are gone as far as commands are concerned."""
    found = state.jobs.get(job_id)
    if found is None or found.deleted:
        raise not_found("job_not_found", f"no job {job_id!r}")
    return found


def repo(state: State, name: str) -> Repo:
    found = state.repos.get(name)
    if found is None:
        raise not_found("repo_not_found", f"no repository {name!r}")
    return found


def require(found: Job, event: type[Event], code: str, doing: str) -> None:
    """Refuse unless the lifecycle table lets ``event`` happen to the job now."""
    if found.status not in allowed_from(event):
        raise conflict(code, f"job {found.job_id!r} is {found.status}: cannot {doing}")


def end_job(
    state: State, found: Job, ending: Ending, now: float, *, delete: bool = False
) -> list[Event]:
    """The job's terminal event and what follows from it: it is deleted if a delete asked
    for it (now, or earlier while it had to stop), its webhooks become due, its workspace is
    marked for cleanup (auto-cleanup, or deletion). The caller ends the job's batch."""
    return [ending, *follow_ups(state, found, now, delete=delete)]


def end_with_batch(
    state: State, found: Job, ending: Ending, now: float, *, delete: bool = False
) -> list[Event]:
    """``end_job``, then the end of the job's batch if it was the last member running."""
    events = end_job(state, found, ending, now, delete=delete)
    return events + end_batch_if_done(state, batch_of(state, found), [found.job_id])


def follow_ups(state: State, found: Job, now: float, *, delete: bool = False) -> list[Event]:
    """What a job's ending brings, after its terminal event (see ``end_job``)."""
    events: list[Event] = []
    deleting = delete or found.status == "deleting"
    if deleting:
        events.append(JobDeleted(job_id=found.job_id, at=now))
    for delivery in state.callbacks.of_job(found.job_id):
        if delivery.status == "scheduled":
            events.append(
                CallbackDue(
                    callback_id=delivery.callback_id,
                    job_id=found.job_id,
                    webhook_id=naming.webhook_id(delivery.callback_id),
                    due_at=now,
                )
            )
    if deleting or found.spec.options.auto_cleanup:
        events.extend(mark_workspace(state, found, "deleted" if deleting else "auto-cleanup"))
    if deleting:
        events.extend(mark_run_dir(state, found))
    return events


def mark_workspace(state: State, found: Job, reason: str) -> list[Event]:
    """Cleanup intent for a job's workspace, once, if it may have one: a crash can leave a
    half-made workspace whose creation was never recorded, so any prepared job counts."""
    if found.batch_id is None:
        return []
    path = found.workspace or naming.workspace_path(state.server.settings, found.job_id)
    if found.cleanup_marked or path in state.cleanup.pending:
        return []
    return [CleanupMarked(path=path, reason=reason, job_id=found.job_id)]


def mark_run_dir(state: State, found: Job) -> list[Event]:
    """A deleted job's agent output goes too (kept until then, auto-cleanup or not)."""
    if found.run_dir is None or found.run_dir in state.cleanup.pending:
        return []
    return [CleanupMarked(path=found.run_dir, reason="deleted", job_id=found.job_id)]


def end_batch_if_done(
    state: State, batch: Batch | None, ending: Iterable[str], *, prepared: bool = False
) -> list[Event]:
    """``batch.ended`` once every member has finished (``ending`` finish in this command)
    and its preparation is over (``prepared``: this command ends it)."""
    if batch is None or (batch.phase == "preparing" and not prepared):
        return []
    ending_now = set(ending)
    for member in batch.job_ids:
        found = state.jobs.get(member)
        if found is not None and not found.terminal and member not in ending_now:
            return []
    return [BatchEnded(batch_id=batch.batch_id)]


def batch_of(state: State, found: Job) -> Batch | None:
    return state.batches.active.get(found.batch_id) if found.batch_id else None


def release_lock(
    state: State, repo_name: str, reason: str, now: float, *, unusable: str | None = None
) -> list[Event]:
    """Give the repository's lock back and hand it, FIFO, to every job waiting for it: they
    form the next batch and share its preparation. Waiters of a repository that cannot be
    used (``unusable`` says why, when the command itself makes it so) fail instead."""
    lock = state.locks.holder(repo_name)
    if lock is None:
        return []
    events: list[Event] = [
        LockReleased(repo=repo_name, holder=lock.holder, generation=lock.generation, reason=reason)
    ]
    waiters = state.jobs.waiters(repo_name)
    if not waiters:
        return events
    found = state.repos.get(repo_name)
    if unusable is None and found is not None and found.degraded is None:
        return [*events, form_batch(state, repo_name, waiters, now, generation=lock.generation + 1)]
    why = unusable or unusable_reason(found, repo_name)
    for waiter in waiters:
        failure = JobFailed(job_id=waiter, reason=why, exit_code=None, at=now)
        events.extend(end_job(state, state.jobs.by_id[waiter], failure, now))
    return events


def form_batch(
    state: State, repo_name: str, members: list[str], now: float, *, generation: int, nth: int = 0
) -> BatchFormed:
    """The batch that takes ``repo_name``'s lock for ``members``; ``nth`` counts the batches
    the same command formed before this one (their ids are taken)."""
    return BatchFormed(
        batch_id=state.batches.next_id(nth),
        repo=repo_name,
        job_ids=members,
        generation=generation,
        lease_expires_at=now + state.server.settings.prepare_timeout_seconds,
    )


def unusable_reason(found: Repo | None, name: str) -> str:
    if found is None:
        return f"repository {name!r} is not registered"
    if found.degraded is not None:
        return f"repository {name!r} is degraded: {found.degraded}"
    if found.clone == "failed":
        return f"repository {name!r} failed to clone: {found.clone_error}"
    return f"repository {name!r} is not ready ({found.clone})"
