"""When a job's launch may go on: one rule for the shell (which finds the launches that are
due), for ``decide`` (which judges every launch step) and for the simulator.

A job launches in steps, each recorded before the next: its workspace (a copy of the
prepared clone, with its staged files), its sidecars, the launch intent (``job.launching``),
then its process. The steps up to the intent need the repository prepared for the job: the
job is preparing and its batch's git pull and index step are over. From the intent until its
process is recorded (or the launch fails) the launch is in flight: a crash there is resolved
from the run directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from projections.jobs import Job
    from projections.state import State


def blocked(state: State, job: Job) -> Literal["not_preparing", "not_prepared"] | None:
    """Why ``job`` cannot take a launch step now, as ``decide``'s refusal code; None when it
    can: it is preparing and its batch is prepared."""
    if job.status != "preparing":
        return "not_preparing"
    batch = state.batches.active.get(job.batch_id) if job.batch_id else None
    if batch is None or batch.phase == "preparing":
        return "not_prepared"
    return None


def due(state: State, job: Job) -> bool:
    """The job's launch is due: it can launch and has not begun to."""
    return job.run_dir is None and blocked(state, job) is None


def due_jobs(state: State) -> Iterator[Job]:
    """The jobs whose launch is due, batch by batch."""
    for batch in state.batches.active.values():
        if batch.phase == "preparing":
            continue
        for job_id in batch.job_ids:
            job = state.jobs.by_id.get(job_id)
            if job is not None and due(state, job):
                yield job


def in_flight(job: Job) -> bool:
    """The launch intent is recorded and the job, unfinished, has no process yet."""
    return job.run_dir is not None and job.process is None and not job.terminal
