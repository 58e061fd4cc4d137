"""Deciding who runs next: FIFO dispatch into free slots, repository locks, batches, and the
end of a batch's preparation with the lock's hand-off to the next waiters.

A dispatched job holds one of ``max_concurrent`` slots until it finishes, whether it waits for
its repository's lock, prepares or runs. Dispatch always takes the head of the run queue:
a job whose repository is free forms a batch that takes the lock; otherwise it waits, FIFO.
When a preparation ends the lock passes to every waiter at once, as one batch sharing the next
git pull. So the lock is never handed past a waiter, and no repository is prepared twice at once.
"""

from __future__ import annotations

from projections import locks
from projections.commands import Dispatch, FinishPreparation, ReleaseStaleLock
from projections.decide import common
from projections.errors import conflict, invalid, not_found
from projections.events import BatchFailed, BatchPrepared, Event, JobFailed, JobWaiting
from projections.state import State


def dispatch(state: State, command: Dispatch, now: float) -> list[Event]:
    events: list[Event] = []
    free = state.server.settings.max_concurrent - len(state.jobs.active)
    taken: set[str] = set()
    """Repositories whose lock or wait queue this dispatch already changed."""
    formed = 0
    for job_id in state.jobs.queue:
        if free <= 0:
            break
        found = state.jobs.by_id[job_id]
        name = found.spec.repo
        repo = state.repos.get(name)
        if repo is None or repo.degraded is not None or repo.clone == "failed":
            ending = JobFailed(
                job_id=job_id,
                reason=common.unusable_reason(repo, name),
                exit_code=None,
                at=now,
            )
            events.extend(common.end_job(state, found, ending, now))
            continue
        free -= 1
        if name in taken or name in state.locks.held or state.jobs.waits.get(name):
            events.append(JobWaiting(job_id=job_id, repo=name))
        else:
            generation = state.locks.next_generation(name)
            batch = common.form_batch(state, name, [job_id], now, generation=generation, nth=formed)
            events.append(batch)
            formed += 1
        taken.add(name)
    return events


def finish_preparation(state: State, command: FinishPreparation, now: float) -> list[Event]:
    """The batch's pull / index step ended. Success: the batch is ready and the lock moves
    on. Failure: every member still preparing fails, then the lock moves on."""
    batch = state.batches.active.get(command.batch_id)
    if batch is None:
        raise not_found("batch_not_found", f"no batch {command.batch_id!r}")
    if batch.phase != "preparing" or batch.generation != command.generation:
        raise conflict(
            "stale_preparation",
            f"batch {command.batch_id!r} is {batch.phase} at generation {batch.generation}; "
            f"this outcome is of generation {command.generation}",
        )
    if (command.commit is None) == (command.error is None):
        raise invalid("invalid_outcome", "a preparation ends with a commit or an error")
    if command.commit is not None:
        prepared: list[Event] = [BatchPrepared(batch_id=batch.batch_id, commit=command.commit)]
        released = common.release_lock(state, batch.repo, "prepared", now)
        return prepared + released + common.end_batch_if_done(state, batch, (), prepared=True)
    error = command.error or ""
    events: list[Event] = [BatchFailed(batch_id=batch.batch_id, error=error, at=now)]
    failing = []
    for member in batch.job_ids:
        found = state.jobs.by_id.get(member)
        if found is None or found.status != "preparing":
            continue
        failing.append(member)
        events.extend(common.follow_ups(state, found, now))
    events.extend(common.release_lock(state, batch.repo, "preparation failed", now))
    return events + common.end_batch_if_done(state, batch, failing, prepared=True)


def release_stale_lock(state: State, command: ReleaseStaleLock, now: float) -> list[Event]:
    """A lock no live preparation or clone holds (an old or damaged history can leave one)
    is released, and handed to the waiters as any release is."""
    lock = state.locks.holder(command.repo)
    if lock is None:
        raise not_found("lock_not_held", f"repository {command.repo!r} is not locked")
    if locks.in_use(state, lock):
        raise conflict("lock_in_use", f"the lock on {command.repo!r} is held by {lock.holder!r}")
    return common.release_lock(state, command.repo, "stale-after-restart", now)
