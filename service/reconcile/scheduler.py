"""Dispatch: whenever a slot is free and the run queue is not empty."""

from __future__ import annotations

from projections.commands import Dispatch
from service.reconcile.loop import record
from service.runtime import Runtime


async def dispatch(rt: Runtime) -> None:
    jobs = rt.state.jobs
    if jobs.queue and len(jobs.active) < rt.state.server.settings.max_concurrent:
        await record(rt, Dispatch())
