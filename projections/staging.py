"""Staging directories holding uploads for jobs that have not been prepared yet."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from projections import jobs
from projections.envelope import Envelope
from projections.events import StagingCreated, StagingRemoved
from projections.handlers import Handlers

if TYPE_CHECKING:
    from projections.state import State


class StagingDir(msgspec.Struct, frozen=True, array_like=True, gc=False):
    job_id: str
    created_seq: int
    created_at: float
    """What the stale-staging sweep compares with its clock (default: older than 24 h)."""


class Staging(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    dirs: dict[str, StagingDir] = msgspec.field(default_factory=dict)

    def of_job(self, job_id: str) -> str | None:
        for path, staged in self.dirs.items():
            if staged.job_id == job_id:
                return path
        return None


def _created(state: State, seq: int, env: Envelope, ev: StagingCreated) -> None:
    job = jobs.touch(state, ev.job_id, seq)
    if job is None:
        state.note(f"seq {seq}: staging for unknown job {ev.job_id!r}")
    else:
        jobs.move(state, job, StagingCreated, seq)
    if ev.path in state.staging.dirs:
        state.note(f"seq {seq}: staging {ev.path!r} created twice")
    state.staging.dirs[ev.path] = StagingDir(ev.job_id, seq, ev.at)


def _removed(state: State, seq: int, env: Envelope, ev: StagingRemoved) -> None:
    staged = state.staging.dirs.pop(ev.path, None)
    if staged is None:
        state.note(f"seq {seq}: unknown staging {ev.path!r} removed")
        return
    job = jobs.touch(state, staged.job_id, seq)
    if job is not None and ev.reason != "consumed":
        job.files.clear()


HANDLERS: Handlers = {
    StagingCreated: _created,
    StagingRemoved: _removed,
}
