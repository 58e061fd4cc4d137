"""Staged uploads that will never be used: of jobs that ended or were deleted before they
were prepared, of jobs never started within the configured age, and directories no job in
the state knows (an upload whose recording a crash cut short)."""

from __future__ import annotations

import logging
import time

import anyio

from projections.commands import RecordOrphan, RemoveStaging
from projections.events import StagingRemoval
from service.reconcile.loop import record
from service.runtime import Runtime
from service.staging_files import list_staging_dirs, remove_staging
from service.trees import TreeRemovalError

log = logging.getLogger("rewind")


async def start_staging_sweeps(rt: Runtime) -> None:
    now = time.time()
    state = rt.state
    max_age = state.server.settings.staging_max_age_seconds
    for path, staged in list(state.staging.dirs.items()):
        job = state.jobs.get(staged.job_id)
        reason: StagingRemoval | None = None
        if job is None or job.deleted or job.terminal:
            reason = "deleted"
        elif job.status == "created" and staged.created_at + max_age <= now:
            reason = "stale"
        if reason is not None:
            rt.tasks.start("staging", path, remove, rt, path, reason)


async def remove(rt: Runtime, path: str, reason: StagingRemoval) -> None:
    await anyio.to_thread.run_sync(remove_staging, rt.path(path))
    await record(rt, RemoveStaging(path=path, reason=reason))


async def sweep_orphans(rt: Runtime) -> int:
    """Directories under ``staging/`` that no recorded staging names; returns how many.

    The state is read after the listing: an upload's staging is recorded before its directory
    is made, so a directory listed here is known by then unless it is really an orphan."""
    found = await anyio.to_thread.run_sync(list_staging_dirs, rt.data_dir.staging)
    known = {rt.path(path) for path in rt.state.staging.dirs}
    removed = 0
    for job_id, directory, _ in found:
        if directory in known:
            continue
        try:
            await anyio.to_thread.run_sync(remove_staging, directory)
        except TreeRemovalError as err:  # one stuck leftover must not stop recovery
            log.warning("orphan staging %s not removed (next sweep retries): %s", directory, err)
            continue
        owner = job_id if job_id in rt.state.jobs.by_id else None
        await record(rt, RecordOrphan(kind="staging", resource_id=str(directory), job_id=owner))
        removed += 1
    return removed
