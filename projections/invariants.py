"""Rules every state reachable through ``decide`` obeys. Each violation is a sentence an
operator can act on.

Two levels, so ``rewind log verify --deep`` stays fast on long logs:
- the folds record, as they apply each event, whatever that event broke (an illegal
  transition, a dispatch out of FIFO order or beyond ``max_concurrent``, a lock taken while
  held, a batch phase going backwards, a callback due for an unfinished job...): reading
  ``state.anomaly_count`` after each event is the cheap check of what the event touched;
- ``check(state)`` walks the whole state for the structural rules (every index agrees with
  the statuses, every lock has a live holder of its own repository, every reference exists),
  run every N events and at the end.
"""

from __future__ import annotations

from collections.abc import Iterable

from projections.lifecycle import ACTIVE, TERMINAL
from projections.state import State


def check(state: State) -> list[str]:
    """All violated rules of ``state``; empty when it is consistent."""
    problems = list(state.anomalies)
    if state.anomaly_count > len(state.anomalies):
        problems.append(f"... and {state.anomaly_count - len(state.anomalies)} more anomalies")
    return problems + check_structure(state)


def check_structure(state: State) -> list[str]:
    """The whole-state rules alone (what the anomalies cannot see, event by event)."""
    problems: list[str] = []
    _check_jobs(state, problems)
    _check_queues(state, problems)
    _check_locks(state, problems)
    _check_batches(state, problems)
    _check_callbacks(state, problems)
    _check_references(state, problems)
    return problems


def _check_jobs(state: State, problems: list[str]) -> None:
    jobs = state.jobs
    for job_id, job in jobs.by_id.items():
        status = job.status
        if (status == "queued") != (job_id in jobs.queue):
            problems.append(f"job {job_id!r} is {status} but the run queue disagrees")
        waits = jobs.waits.get(job.spec.repo, {})
        if (status == "waiting") != (job_id in waits):
            problems.append(f"job {job_id!r} is {status} but the wait queue disagrees")
        if (status in ACTIVE) != (job_id in jobs.active):
            problems.append(f"job {job_id!r} is {status} but the active slots disagree")
        if (job.run_dir is not None and status not in TERMINAL) != (job_id in jobs.attached):
            problems.append(f"job {job_id!r} is {status} but the process index disagrees")
        if (status not in TERMINAL) != (job_id in jobs.by_repo.get(job.spec.repo, {})):
            problems.append(f"job {job_id!r} is {status} but its repository's index disagrees")
        if status in ("preparing", "running") and job.batch_id is None:
            problems.append(f"job {job_id!r} is {status} outside any batch")
        if status == "running" and job.process is None:
            problems.append(f"job {job_id!r} is running without a process identity")
    for index, name in (
        (jobs.queue, "run queue"),
        (jobs.active, "active slots"),
        (jobs.attached, "process index"),
    ):
        for job_id in index:
            if job_id not in jobs.by_id:
                problems.append(f"the {name} holds unknown job {job_id!r}")


def _check_queues(state: State, problems: list[str]) -> None:
    if not _ascending(state.jobs.queue.values()):
        problems.append(f"the run queue is not in seq order: {list(state.jobs.queue.items())}")
    for repo, waiters in state.jobs.waits.items():
        if not _ascending(waiters.values()):
            problems.append(f"the wait queue of {repo!r} is not in seq order")
        for job_id in waiters:
            job = state.jobs.get(job_id)
            if job is None or job.spec.repo != repo:
                problems.append(f"the wait queue of {repo!r} holds a job of another repository")


def _check_locks(state: State, problems: list[str]) -> None:
    for repo, lock in state.locks.held.items():
        if lock.generation != state.locks.generations.get(repo):
            problems.append(
                f"lock on {repo!r} has generation {lock.generation}, "
                f"the latest granted is {state.locks.generations.get(repo)}"
            )
        if lock.kind == "clone":
            if lock.holder != repo or repo not in state.repos.by_name:
                problems.append(f"clone lock on {repo!r} is held by {lock.holder!r}")
            continue
        batch = state.batches.active.get(lock.holder)
        if batch is None:
            problems.append(f"lock on {repo!r} is held by unknown batch {lock.holder!r}")
        elif batch.repo != repo:
            problems.append(
                f"lock on {repo!r} is held by batch {batch.batch_id!r} of {batch.repo!r}"
            )
        elif batch.phase == "executing":
            problems.append(f"lock on {repo!r} is held by batch {batch.batch_id!r}, {batch.phase}")


def _check_batches(state: State, problems: list[str]) -> None:
    for batch_id, batch in state.batches.active.items():
        lock = state.locks.held.get(batch.repo)
        if batch.phase == "preparing" and (lock is None or lock.holder != batch_id):
            problems.append(f"batch {batch_id!r} is preparing without holding {batch.repo!r}")
        for job_id in batch.job_ids:
            job = state.jobs.get(job_id)
            if job is None:
                problems.append(f"batch {batch_id!r} has unknown member {job_id!r}")
            elif job.spec.repo != batch.repo or job.batch_id != batch_id:
                problems.append(f"batch {batch_id!r} has member {job_id!r} of another batch")


def _check_callbacks(state: State, problems: list[str]) -> None:
    callbacks = state.callbacks
    for callback_id, delivery in callbacks.by_id.items():
        if (delivery.status == "pending") != (callback_id in callbacks.pending):
            problems.append(f"callback {callback_id!r} is {delivery.status}; the index disagrees")
        job = state.jobs.get(delivery.job_id)
        if job is None:
            problems.append(f"callback {callback_id!r} belongs to unknown job {delivery.job_id!r}")
        elif delivery.status != "scheduled" and not job.terminal:
            problems.append(f"callback {callback_id!r} is {delivery.status} for a {job.status} job")
        if delivery.round_attempts > len(delivery.spec.schedule) + 1:
            problems.append(
                f"callback {callback_id!r} made {delivery.round_attempts} attempts, its "
                f"schedule allows {len(delivery.spec.schedule) + 1}"
            )


def _check_references(state: State, problems: list[str]) -> None:
    jobs = state.jobs.by_id
    for job_id, job in jobs.items():
        if job.terminal:
            continue
        if job.spec.repo not in state.repos.by_name:
            problems.append(f"unfinished job {job_id!r} uses unknown repository {job.spec.repo!r}")
        if job.spec.owner not in state.users.by_id:
            problems.append(f"unfinished job {job_id!r} belongs to unknown user {job.spec.owner!r}")
    for path, cleanup in state.cleanup.pending.items():
        if cleanup.spec.job_id is not None and cleanup.spec.job_id not in jobs:
            problems.append(f"cleanup of {path!r} belongs to unknown job {cleanup.spec.job_id!r}")
    for rid, owner in _resources(state):
        if owner not in jobs:
            problems.append(f"{rid!r} belongs to unknown job {owner!r}")
    for path, staged in state.staging.dirs.items():
        if staged.job_id not in jobs:
            problems.append(f"staging {path!r} belongs to unknown job {staged.job_id!r}")
    for token_hash, token in state.users.tokens.items():
        if token.user_id not in state.users.by_id:
            problems.append(f"token {token_hash[:12]!r} belongs to unknown user {token.user_id!r}")


def _resources(state: State) -> Iterable[tuple[str, str]]:
    for cid, container in state.resources.containers.items():
        yield f"container {cid}", container.job_id
    for nid, network in state.resources.networks.items():
        yield f"network {nid}", network.job_id


def _ascending(seqs: Iterable[int]) -> bool:
    previous = 0
    for seq in seqs:
        if seq <= previous:
            return False
        previous = seq
    return True
