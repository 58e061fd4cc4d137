"""Retention: deleted jobs leave the state once their retention age has passed and nothing
of theirs is pending (the log keeps their whole history); their webhook secrets go too."""

from __future__ import annotations

import time

from projections.commands import PurgeJob
from projections.decide.jobs import purge_blockers
from service.reconcile.loop import record
from service.runtime import Runtime


async def purge_expired(rt: Runtime) -> None:
    state = rt.state
    now = time.time()
    keep = state.server.settings.retention_seconds
    expired = [
        job
        for job in state.jobs.by_id.values()
        if job.deleted_at is not None and job.deleted_at + keep <= now
    ]
    for job in expired:
        if purge_blockers(state, job):
            continue
        callbacks = [spec.callback_id for spec in job.spec.callbacks]
        if await record(rt, PurgeJob(job_id=job.job_id)) is not None:
            for callback_id in callbacks:
                rt.secrets.remove(callback_id)
