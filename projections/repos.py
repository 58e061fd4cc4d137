"""Registered repositories: where they come from, their settings and clone health.

Settings live here, not in a settings file beside the clone, so a crash can never leave them
half-written (the seed's gap #11).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from projections.envelope import Envelope
from projections.events import (
    RepoCloneCompleted,
    RepoCloneFailed,
    RepoCloneStarted,
    RepoDegraded,
    RepoRegistered,
    RepoSettingsChanged,
    RepoUnregistered,
)
from projections.handlers import Handlers

CloneStatus = Literal["registered", "cloning", "ready", "failed"]


class Repo(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    spec: RepoRegistered
    settings: dict[str, str]
    clone: CloneStatus = "registered"
    commit: str | None = None
    clone_error: str | None = None
    degraded: str | None = None
    """Why the repository is unusable (e.g. corrupt on disk); the server still starts."""


class Repos(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    by_name: dict[str, Repo] = msgspec.field(default_factory=dict)

    def usable(self, name: str) -> bool:
        repo = self.by_name.get(name)
        return repo is not None and repo.clone == "ready" and repo.degraded is None

    def _registered(self, seq: int, env: Envelope, ev: RepoRegistered) -> None:
        self.by_name[ev.repo] = Repo(spec=ev, settings=ev.settings)

    def _clone_started(self, seq: int, env: Envelope, ev: RepoCloneStarted) -> None:
        repo = self.by_name.get(ev.repo)
        if repo is not None:
            repo.clone = "cloning"
            repo.clone_error = None

    def _clone_completed(self, seq: int, env: Envelope, ev: RepoCloneCompleted) -> None:
        repo = self.by_name.get(ev.repo)
        if repo is not None:
            repo.clone = "ready"
            repo.commit = ev.commit

    def _clone_failed(self, seq: int, env: Envelope, ev: RepoCloneFailed) -> None:
        repo = self.by_name.get(ev.repo)
        if repo is not None:
            repo.clone = "failed"
            repo.clone_error = ev.error

    def _settings_changed(self, seq: int, env: Envelope, ev: RepoSettingsChanged) -> None:
        repo = self.by_name.get(ev.repo)
        if repo is not None:
            repo.settings = ev.settings

    def _degraded(self, seq: int, env: Envelope, ev: RepoDegraded) -> None:
        repo = self.by_name.get(ev.repo)
        if repo is not None:
            repo.degraded = ev.reason

    def _unregistered(self, seq: int, env: Envelope, ev: RepoUnregistered) -> None:
        self.by_name.pop(ev.repo, None)


HANDLERS: Handlers = {
    RepoRegistered: Repos._registered,
    RepoCloneStarted: Repos._clone_started,
    RepoCloneCompleted: Repos._clone_completed,
    RepoCloneFailed: Repos._clone_failed,
    RepoSettingsChanged: Repos._settings_changed,
    RepoDegraded: Repos._degraded,
    RepoUnregistered: Repos._unregistered,
}
