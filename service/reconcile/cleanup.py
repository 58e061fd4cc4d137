"""Workspace cleanup: archive uncommitted work, remove the directory, record it; resumed
after a crash at any step because ``cleanup.marked`` was durable before anything was touched."""

from __future__ import annotations

import time

import anyio

from projections.cleanup import Cleanup
from projections.commands import FinishCleanup, RecordArchived
from service.archive import archive_changes
from service.git import GitError
from service.reconcile.loop import record
from service.runtime import Runtime
from service.testhooks import pause_point
from service.trees import TreeRemovalError, remove_tree


async def start_cleanups(rt: Runtime) -> None:
    for cleanup in rt.state.cleanup.due(time.time()):
        path = cleanup.path
        rt.tasks.start("cleanup", path, clean, rt, path)


async def clean(rt: Runtime, path: str) -> None:
    cleanup = rt.state.cleanup.pending.get(path)
    if cleanup is None:
        return
    target = rt.path(path)
    root = rt.data_dir.root
    await pause_point("cleanup.started", root)
    try:
        if _is_workspace(rt, cleanup) and cleanup.archive is None:
            job_id = cleanup.spec.job_id or ""
            sandbox = rt.sandbox.reader(target, rt.hidden_from_agents(target))
            if await archive_changes(target, rt.data_dir.archive / job_id, sandbox):
                await record(rt, RecordArchived(path=path, archive=f"archive/{job_id}"))
            await pause_point("cleanup.archived", root)
        await anyio.to_thread.run_sync(remove_tree, target)
    except (OSError, GitError, TreeRemovalError) as err:
        await record(rt, FinishCleanup(path=path, error=str(err)))
        return
    await pause_point("cleanup.removed", root)
    await record(rt, FinishCleanup(path=path))


def _is_workspace(rt: Runtime, cleanup: Cleanup) -> bool:
    """Only a job's workspace holds work worth archiving (not its run dir, not a clone)."""
    job = rt.state.jobs.get(cleanup.spec.job_id) if cleanup.spec.job_id else None
    return job is not None and cleanup.path != job.run_dir and cleanup.path == job.workspace
