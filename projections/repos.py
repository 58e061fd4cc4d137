"""Registered repositories: where they come from, their settings, and the health of the clone.

Settings live here, not in a settings file beside the clone, so a crash can never leave them
half-written (the seed's gap #11).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import msgspec

from projections import locks
from projections.envelope import Envelope
from projections.events import (
    BatchFailed,
    BatchPrepared,
    RepoCloneCompleted,
    RepoCloneFailed,
    RepoCloneStarted,
    RepoDegraded,
    RepoRegistered,
    RepoRestored,
    RepoSettings,
    RepoSettingsChanged,
    RepoUnregistered,
)
from projections.handlers import Handlers

if TYPE_CHECKING:
    from projections.state import State

CloneStatus = Literal["registered", "cloning", "ready", "failed"]


class Repo(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    spec: RepoRegistered
    settings: RepoSettings
    registered_seq: int
    clone: CloneStatus = "registered"
    commit: str | None = None
    """The commit the clone, then the latest preparation, checked out."""
    clone_error: str | None = None
    prepare_error: str | None = None
    """The latest preparation's failure; cleared by the next success."""
    degraded: str | None = None
    """Why the clone is unusable (missing, broken); the server stays up around it."""

    @property
    def name(self) -> str:
        return self.spec.repo

    @property
    def usable(self) -> bool:
        return self.clone == "ready" and self.degraded is None


class Repos(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    by_name: dict[str, Repo] = msgspec.field(default_factory=dict)

    def get(self, name: str) -> Repo | None:
        return self.by_name.get(name)


def _repo(state: State, name: str, seq: int) -> Repo | None:
    repo = state.repos.by_name.get(name)
    if repo is None:
        state.note(f"seq {seq}: event about unknown repository {name!r}")
    return repo


def _registered(state: State, seq: int, env: Envelope, ev: RepoRegistered) -> None:
    if ev.repo in state.repos.by_name:
        state.note(f"seq {seq}: repository {ev.repo!r} registered twice")
    state.repos.by_name[ev.repo] = Repo(spec=ev, settings=ev.settings, registered_seq=seq)


def _settings_changed(state: State, seq: int, env: Envelope, ev: RepoSettingsChanged) -> None:
    repo = _repo(state, ev.repo, seq)
    if repo is not None:
        repo.settings = ev.settings


def _clone_started(state: State, seq: int, env: Envelope, ev: RepoCloneStarted) -> None:
    repo = _repo(state, ev.repo, seq)
    if repo is None:
        return
    if repo.clone == "cloning":
        state.note(f"seq {seq}: repository {ev.repo!r} clone started while cloning")
    repo.clone = "cloning"
    repo.clone_error = None
    locks.acquire(
        state,
        seq,
        repo=ev.repo,
        holder=ev.repo,
        kind="clone",
        generation=ev.generation,
        lease_expires_at=ev.lease_expires_at,
    )


def _clone_ended(state: State, seq: int, repo: Repo) -> bool:
    if repo.clone != "cloning":
        state.note(f"seq {seq}: repository {repo.name!r} clone ended while {repo.clone}")
        return False
    return True


def _clone_completed(state: State, seq: int, env: Envelope, ev: RepoCloneCompleted) -> None:
    repo = _repo(state, ev.repo, seq)
    if repo is not None and _clone_ended(state, seq, repo):
        repo.clone = "ready"
        repo.commit = ev.commit


def _clone_failed(state: State, seq: int, env: Envelope, ev: RepoCloneFailed) -> None:
    repo = _repo(state, ev.repo, seq)
    if repo is not None and _clone_ended(state, seq, repo):
        repo.clone = "failed"
        repo.clone_error = ev.error


def _degraded(state: State, seq: int, env: Envelope, ev: RepoDegraded) -> None:
    repo = _repo(state, ev.repo, seq)
    if repo is not None:
        repo.degraded = ev.reason


def _restored(state: State, seq: int, env: Envelope, ev: RepoRestored) -> None:
    repo = _repo(state, ev.repo, seq)
    if repo is not None:
        if repo.degraded is None:
            state.note(f"seq {seq}: repository {ev.repo!r} restored but was not degraded")
        repo.degraded = None


def _unregistered(state: State, seq: int, env: Envelope, ev: RepoUnregistered) -> None:
    if _repo(state, ev.repo, seq) is None:
        return
    if state.jobs.by_repo.get(ev.repo):
        state.note(f"seq {seq}: repository {ev.repo!r} unregistered while jobs use it")
    if ev.repo in state.locks.held:
        state.note(f"seq {seq}: repository {ev.repo!r} unregistered while locked")
    del state.repos.by_name[ev.repo]


def _prepared(state: State, seq: int, env: Envelope, ev: BatchPrepared) -> None:
    batch = state.batches.active.get(ev.batch_id)
    repo = state.repos.by_name.get(batch.repo) if batch else None
    if repo is not None:
        repo.commit = ev.commit
        repo.prepare_error = None


def _prepare_failed(state: State, seq: int, env: Envelope, ev: BatchFailed) -> None:
    batch = state.batches.active.get(ev.batch_id)
    repo = state.repos.by_name.get(batch.repo) if batch else None
    if repo is not None:
        repo.prepare_error = ev.error


HANDLERS: Handlers = {
    RepoRegistered: _registered,
    RepoSettingsChanged: _settings_changed,
    RepoCloneStarted: _clone_started,
    RepoCloneCompleted: _clone_completed,
    RepoCloneFailed: _clone_failed,
    RepoDegraded: _degraded,
    RepoRestored: _restored,
    RepoUnregistered: _unregistered,
    BatchPrepared: _prepared,
    BatchFailed: _prepare_failed,
}
