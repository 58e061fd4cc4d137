"""Deciding repositories: registration (which starts the clone under the repository's lock),
settings, the clone's outcome, damage, and unregistration."""

from __future__ import annotations

import re
from typing import Final

from projections import naming
from projections.branches import branch_problem
from projections.commands import (
    ChangeRepoSettings,
    DegradeRepo,
    FinishClone,
    RegisterRepo,
    RestoreRepo,
    RetryClone,
    UnregisterRepo,
)
from projections.decide import common
from projections.errors import conflict, invalid
from projections.events import (
    CleanupMarked,
    Event,
    JobFailed,
    RepoCloneCompleted,
    RepoCloneFailed,
    RepoCloneStarted,
    RepoDegraded,
    RepoRegistered,
    RepoRestored,
    RepoSettingsChanged,
    RepoUnregistered,
)
from projections.state import State

REPO_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def register(state: State, command: RegisterRepo, now: float) -> list[Event]:
    """The branch is judged first: the API refused a bad branch before anything else."""
    bad_branch = branch_problem(command.branch)
    if bad_branch is not None:
        raise invalid("invalid_branch", bad_branch)
    if not REPO_NAME.fullmatch(command.repo):
        raise invalid(
            "invalid_repo_name",
            "a repository name is 1-64 of A-Z a-z 0-9 . _ - and starts with a letter or digit",
        )
    if command.repo in state.repos.by_name:
        raise conflict("repo_exists", f"repository {command.repo!r} is already registered")
    if not command.git_url.strip():
        raise invalid("invalid_git_url", "gitUrl is empty")
    common.check_env_names(command.settings.variables)
    return [
        RepoRegistered(
            repo=command.repo,
            git_url=command.git_url,
            branch=command.branch,
            description=command.description,
            settings=command.settings,
            credentials=command.credentials,
        ),
        _clone_started(state, command.repo, now),
    ]


def _clone_started(state: State, name: str, now: float) -> RepoCloneStarted:
    return RepoCloneStarted(
        repo=name,
        generation=state.locks.next_generation(name),
        lease_expires_at=now + state.server.settings.prepare_timeout_seconds,
    )


def change_settings(state: State, command: ChangeRepoSettings, now: float) -> list[Event]:
    found = common.repo(state, command.repo)
    common.check_env_names(command.settings.variables)
    if command.settings == found.settings:
        return []
    return [RepoSettingsChanged(repo=command.repo, settings=command.settings)]


def finish_clone(state: State, command: FinishClone, now: float) -> list[Event]:
    found = common.repo(state, command.repo)
    if found.clone != "cloning":
        raise conflict("not_cloning", f"repository {command.repo!r} is {found.clone}")
    if (command.commit is None) == (command.error is None):
        raise invalid("invalid_outcome", "a clone ends with a commit or an error, not both")
    if command.commit is not None:
        done: Event = RepoCloneCompleted(repo=command.repo, commit=command.commit)
        return [done, *common.release_lock(state, command.repo, "cloned", now)]
    error = command.error or ""
    failed = RepoCloneFailed(repo=command.repo, error=error)
    why = f"repository {command.repo!r} failed to clone: {error}"
    return [failed, *common.release_lock(state, command.repo, "clone failed", now, unusable=why)]


def retry_clone(state: State, command: RetryClone, now: float) -> list[Event]:
    found = common.repo(state, command.repo)
    if found.clone != "failed" or command.repo in state.locks.held:
        raise conflict("not_failed", f"repository {command.repo!r} is {found.clone}")
    return [_clone_started(state, command.repo, now)]


def degrade(state: State, command: DegradeRepo, now: float) -> list[Event]:
    """The clone is damaged: jobs waiting for it fail now rather than wait for ever."""
    found = common.repo(state, command.repo)
    if found.degraded == command.reason:
        return []
    events: list[Event] = [RepoDegraded(repo=command.repo, reason=command.reason)]
    why = f"repository {command.repo!r} is degraded: {command.reason}"
    for waiter in state.jobs.waiters(command.repo):
        failure = JobFailed(job_id=waiter, reason=why, exit_code=None, at=now)
        events.extend(common.end_job(state, state.jobs.by_id[waiter], failure, now))
    return events


def restore(state: State, command: RestoreRepo, now: float) -> list[Event]:
    found = common.repo(state, command.repo)
    if found.degraded is None:
        raise conflict("not_degraded", f"repository {command.repo!r} is not degraded")
    return [RepoRestored(repo=command.repo)]


def unregister(state: State, command: UnregisterRepo, now: float) -> list[Event]:
    common.repo(state, command.repo)
    users = list(state.jobs.by_repo.get(command.repo, ()))
    if users:
        raise conflict(
            "repo_in_use",
            f"repository {command.repo!r} is used by {len(users)} unfinished jobs "
            f"(first: {users[0]!r})",
        )
    if command.repo in state.locks.held:
        raise conflict("repo_busy", f"repository {command.repo!r} is being cloned or prepared")
    path = naming.clone_path(command.repo)
    events: list[Event] = [RepoUnregistered(repo=command.repo)]
    if path not in state.cleanup.pending:
        events.append(CleanupMarked(path=path, reason="repository unregistered", job_id=None))
    return events
