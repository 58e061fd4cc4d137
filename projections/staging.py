"""Staging directories holding uploads for jobs that have not got a workspace yet."""

from __future__ import annotations

import msgspec

from projections.envelope import Envelope
from projections.events import StagingCreated, StagingRemoved
from projections.handlers import Handlers


class StagingDir(msgspec.Struct, frozen=True, array_like=True, gc=False):
    job_id: str
    created_seq: int
    created_ts: float
    """Display time, also what the stale-staging sweep (> 24 h) compares against its clock."""


class Staging(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    dirs: dict[str, StagingDir] = msgspec.field(default_factory=dict)

    def of_job(self, job_id: str) -> list[str]:
        return [path for path, d in self.dirs.items() if d.job_id == job_id]

    def _created(self, seq: int, env: Envelope, ev: StagingCreated) -> None:
        self.dirs[ev.path] = StagingDir(ev.job_id, seq, env.ts)

    def _removed(self, seq: int, env: Envelope, ev: StagingRemoved) -> None:
        self.dirs.pop(ev.path, None)


HANDLERS: Handlers = {
    StagingCreated: Staging._created,
    StagingRemoved: Staging._removed,
}
