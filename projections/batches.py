"""Batches: jobs of one repository sharing a single git pull / index step.

Phases only move forward: preparing (holds the repository lock) -> ready (prepared; the lock
is released right after) -> executing (a member's agent started) ; or preparing -> failed.
A batch ends once every member has finished.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from projections import jobs, locks
from projections.envelope import Envelope
from projections.events import (
    BatchEnded,
    BatchFailed,
    BatchFormed,
    BatchPhase,
    BatchPrepared,
    JobProcessStarted,
)
from projections.handlers import Handlers
from projections.lifecycle import TERMINAL

if TYPE_CHECKING:
    from projections.state import State


class Batch(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    batch_id: str
    repo: str
    job_ids: list[str]
    phase: BatchPhase
    formed_seq: int
    generation: int
    commit: str | None = None
    error: str | None = None


class Batches(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    active: dict[str, Batch] = msgspec.field(default_factory=dict)
    formed: int = 0
    """Batches ever formed: decide names the next one from it."""

    def next_id(self, offset: int = 0) -> str:
        return f"batch-{self.formed + offset + 1:08d}"


def _batch(state: State, batch_id: str, seq: int) -> Batch | None:
    batch = state.batches.active.get(batch_id)
    if batch is None:
        state.note(f"seq {seq}: event about unknown batch {batch_id!r}")
        return None
    by_id = state.jobs.by_id
    for job_id in batch.job_ids:
        member = by_id.get(job_id)
        if member is not None:
            member.seqs.append(seq)
    return batch


def _phase(state: State, batch: Batch, expected: BatchPhase, new: BatchPhase, seq: int) -> bool:
    if batch.phase != expected:
        state.note(f"seq {seq}: batch {batch.batch_id!r} went from {batch.phase} to {new}")
        return False
    batch.phase = new
    return True


def _formed(state: State, seq: int, env: Envelope, ev: BatchFormed) -> None:
    batches = state.batches
    if ev.batch_id in batches.active:
        state.note(f"seq {seq}: batch {ev.batch_id!r} formed twice")
        return
    by_id = state.jobs.by_id
    waiters = iter(state.jobs.waits.get(ev.repo, ()))
    for job_id in ev.job_ids:
        job = by_id.get(job_id)
        if job is not None and job.status == "waiting" and next(waiters, None) != job_id:
            state.note(f"seq {seq}: batch {ev.batch_id!r} skips earlier waiters of {ev.repo!r}")
            break
    locks.acquire(
        state,
        seq,
        repo=ev.repo,
        holder=ev.batch_id,
        kind="prepare",
        generation=ev.generation,
        lease_expires_at=ev.lease_expires_at,
    )
    for job_id in ev.job_ids:
        job = by_id.get(job_id)
        if job is None:
            state.note(f"seq {seq}: batch {ev.batch_id!r} has unknown member {job_id!r}")
            continue
        job.seqs.append(seq)
        if job.spec.repo != ev.repo:
            state.note(f"seq {seq}: batch {ev.batch_id!r} on {ev.repo!r} has a job of another")
        if jobs.move(state, job, BatchFormed, seq):
            job.batch_id = ev.batch_id
    batches.formed += 1
    batches.active[ev.batch_id] = Batch(
        batch_id=ev.batch_id,
        repo=ev.repo,
        job_ids=list(ev.job_ids),
        phase="preparing",
        formed_seq=seq,
        generation=ev.generation,
    )


def _prepared(state: State, seq: int, env: Envelope, ev: BatchPrepared) -> None:
    batch = _batch(state, ev.batch_id, seq)
    if batch is not None and _phase(state, batch, "preparing", "ready", seq):
        batch.commit = ev.commit


def _failed(state: State, seq: int, env: Envelope, ev: BatchFailed) -> None:
    batch = _batch(state, ev.batch_id, seq)
    if batch is None or not _phase(state, batch, "preparing", "failed", seq):
        return
    batch.error = ev.error
    for job_id in batch.job_ids:
        job = state.jobs.by_id.get(job_id)
        if job is not None and job.status == "preparing":
            job.reason = f"preparation failed: {ev.error}"
            jobs.move(state, job, BatchFailed, seq, ev.at)


def _member_started(state: State, seq: int, env: Envelope, ev: JobProcessStarted) -> None:
    job = state.jobs.by_id.get(ev.job_id)
    batch = state.batches.active.get(job.batch_id) if job and job.batch_id else None
    if batch is not None and batch.phase == "ready":
        batch.phase = "executing"


def _ended(state: State, seq: int, env: Envelope, ev: BatchEnded) -> None:
    batch = _batch(state, ev.batch_id, seq)
    if batch is None:
        return
    by_id = state.jobs.by_id
    unfinished = [
        j for j in batch.job_ids if (job := by_id.get(j)) is not None and job.status not in TERMINAL
    ]
    if unfinished or batch.phase == "preparing":
        state.note(f"seq {seq}: batch {ev.batch_id!r} ended with {unfinished or 'its lock'} open")
    del state.batches.active[ev.batch_id]


HANDLERS: Handlers = {
    BatchFormed: _formed,
    BatchPrepared: _prepared,
    BatchFailed: _failed,
    JobProcessStarted: _member_started,
    BatchEnded: _ended,
}
