"""Rules every state reachable by a valid history obeys, checked after each event in tests and
by ``rewind log verify --deep``. Each violation is a sentence an operator can act on."""

from __future__ import annotations

from collections.abc import Iterable

from projections.callbacks import MAX_CALLBACK_ATTEMPTS
from projections.state import State


def check(state: State) -> list[str]:
    """All violated invariants of ``state``; empty when the state is consistent."""
    problems: list[str] = []
    problems.extend(state.locks.conflicts)
    _check_locks(state, problems)
    _check_queues(state, problems)
    _check_running(state, problems)
    _check_callbacks(state, problems)
    _check_batches(state, problems)
    _check_tokens(state, problems)
    return problems


def _check_locks(state: State, problems: list[str]) -> None:
    jobs = state.jobs.by_id
    for repo, lock in state.locks.held.items():
        holder = jobs.get(lock.job_id)
        if holder is None:
            problems.append(f"lock on {repo!r} is held by unknown job {lock.job_id!r}")
        elif holder.terminal:
            problems.append(
                f"lock on {repo!r} is held by job {lock.job_id!r}, which is {holder.status}"
            )
        if lock.generation != state.locks.generations.get(repo):
            problems.append(
                f"lock on {repo!r} has generation {lock.generation}, "
                f"the latest granted is {state.locks.generations.get(repo)}"
            )


def _check_queues(state: State, problems: list[str]) -> None:
    jobs = state.jobs.by_id
    seen: dict[str, str] = {}
    queues: list[tuple[str, dict[str, int]]] = [("the run queue", state.queue.entries)]
    queues.extend((f"the wait queue of {repo!r}", q) for repo, q in state.waits.queues.items())
    for where, entries in queues:
        if not _ascending(entries.values()):
            problems.append(f"{where} is not ordered by seq: {list(entries.items())}")
        for job_id in entries:
            if job_id in seen:
                problems.append(f"job {job_id!r} is in {seen[job_id]} and in {where}")
            seen[job_id] = where
            job = jobs.get(job_id)
            if job is None:
                problems.append(f"{where} holds unknown job {job_id!r}")
            elif job.terminal:
                problems.append(f"job {job_id!r} is {job.status} but still in {where}")
            elif job.status == "running" or job_id in state.jobs.running:
                problems.append(f"job {job_id!r} is running and still in {where}")
    for job_id, repo in state.waits.where.items():
        if job_id not in state.waits.queues.get(repo, {}):
            problems.append(f"job {job_id!r} is indexed as waiting on {repo!r} but is not there")


def _check_running(state: State, problems: list[str]) -> None:
    jobs = state.jobs.by_id
    for job_id, job in jobs.items():
        if job.status == "running":
            if job.process is None:
                problems.append(f"job {job_id!r} is running without a process identity")
            if job_id not in state.jobs.running:
                problems.append(f"job {job_id!r} is running but missing from the running index")
    for job_id in state.jobs.running:
        indexed = jobs.get(job_id)
        if indexed is None or indexed.status != "running":
            problems.append(f"job {job_id!r} is indexed as running but is not")


def _check_callbacks(state: State, problems: list[str]) -> None:
    for callback_id, cb in state.callbacks.by_id.items():
        if cb.attempts > MAX_CALLBACK_ATTEMPTS:
            problems.append(
                f"callback {callback_id!r} made {cb.attempts} attempts, "
                f"policy allows {MAX_CALLBACK_ATTEMPTS}"
            )
        if (cb.status == "pending") != (callback_id in state.callbacks.pending):
            problems.append(f"callback {callback_id!r} is {cb.status} but the index disagrees")


def _check_batches(state: State, problems: list[str]) -> None:
    jobs = state.jobs.by_id
    for batch_id, batch in state.batches.active.items():
        for job_id in batch.job_ids:
            job = jobs.get(job_id)
            if job is None:
                problems.append(f"batch {batch_id!r} has unknown member {job_id!r}")
            elif job.spec.repo != batch.repo:
                problems.append(
                    f"batch {batch_id!r} on {batch.repo!r} has member {job_id!r} "
                    f"of repository {job.spec.repo!r}"
                )


def _check_tokens(state: State, problems: list[str]) -> None:
    for token_hash, token in state.users.tokens.items():
        if token.user_id not in state.users.users:
            problems.append(f"token {token_hash[:12]!r} belongs to unknown user {token.user_id!r}")


def _ascending(seqs: Iterable[int]) -> bool:
    previous = 0
    for seq in seqs:
        if seq <= previous:
            return False
        previous = seq
    return True
