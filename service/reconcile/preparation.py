"""Preparing a batch's repository under its lock: health check, git pull (if any member
asked for one), the repository's index command; then the lock moves on.

A preparation cut short by a crash is simply run again from the start (pull is idempotent);
the batch stays formed and keeps the lock meanwhile.
"""

from __future__ import annotations

import os
from pathlib import Path

import anyio

from projections import naming
from projections.commands import DegradeRepo, FinishPreparation
from service import git
from service.reconcile.loop import record
from service.run_command import CommandTimeoutError, run_command
from service.runtime import Runtime


async def start_preparations(rt: Runtime) -> None:
    for batch in rt.state.batches.active.values():
        if batch.phase == "preparing":
            rt.tasks.start("prepare", batch.batch_id, prepare, rt, batch.batch_id, batch.generation)


async def prepare(rt: Runtime, batch_id: str, generation: int) -> None:
    state = rt.state
    batch = state.batches.active.get(batch_id)
    repo = state.repos.get(batch.repo) if batch else None
    if batch is None or repo is None or batch.generation != generation:
        return
    clone = rt.path(naming.clone_path(repo.name))
    damage = await git.check_health(clone)
    if damage is not None:
        await record(rt, DegradeRepo(repo=repo.name, reason=damage))
        await _finish(rt, batch_id, generation, error=f"repository damaged: {damage}")
        return
    members = [state.jobs.by_id[j] for j in batch.job_ids if j in state.jobs.by_id]
    pull = any(job.spec.options.git_pull for job in members)
    try:
        with anyio.fail_after(state.server.settings.prepare_timeout_seconds):
            if pull:
                _, auth = rt.repo_secrets.auth(repo)
                commit = await git.pull(clone, repo.spec.branch, auth=auth)
            else:
                commit = await git.head(clone)
            if repo.settings.index_command:
                await _index(rt, clone, repo.settings.index_command, rt.repo_secrets.env(repo))
    except TimeoutError:
        await _finish(rt, batch_id, generation, error="preparation timed out")
    except (git.GitError, OSError, ValueError) as err:
        await _finish(rt, batch_id, generation, error=str(err))
    else:
        await _finish(rt, batch_id, generation, commit=commit)


async def _index(rt: Runtime, clone: Path, argv: list[str], env: dict[str, str]) -> None:
    """The repository's index step, in the clone, under the lock; its failure fails the
    preparation with the command's last words."""
    timeout = rt.state.server.settings.prepare_timeout_seconds
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    try:
        result = await run_command(argv, env={**base, **env}, timeout=timeout, cwd=clone)
    except CommandTimeoutError as err:
        raise ValueError(str(err)) from None
    if result.returncode != 0:
        tail = result.stderr.decode(errors="replace").strip()[-500:]
        raise ValueError(f"index command {argv[0]!r} exited {result.returncode}: {tail}")


async def _finish(
    rt: Runtime,
    batch_id: str,
    generation: int,
    *,
    commit: str | None = None,
    error: str | None = None,
) -> None:
    await record(
        rt, FinishPreparation(batch_id=batch_id, generation=generation, commit=commit, error=error)
    )
