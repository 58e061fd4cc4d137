"""Cloning registered repositories (under their clone lock) into ``repos/<name>``."""

from __future__ import annotations

from projections import naming
from projections.commands import FinishClone
from service import git
from service.reconcile.loop import record
from service.runtime import Runtime


async def start_clones(rt: Runtime) -> None:
    for repo in rt.state.repos.by_name.values():
        if repo.clone == "cloning":
            name = repo.name
            rt.tasks.start("clone", name, clone, rt, name)


async def clone(rt: Runtime, name: str) -> None:
    """Idempotent: a clone interrupted by a crash is cleaned up and made again. The URL's
    credentials, if it had any, come from the secrets store."""
    repo = rt.state.repos.get(name)
    if repo is None or repo.clone != "cloning":
        return
    try:
        url, auth = rt.repo_secrets.auth(repo)
        clone = rt.path(naming.clone_path(name))
        commit = await git.clone(url, clone, repo.spec.branch, auth=auth)
    except (git.GitError, OSError, ValueError) as err:
        await record(rt, FinishClone(repo=name, error=str(err)))
        return
    await record(rt, FinishClone(repo=name, commit=commit))
