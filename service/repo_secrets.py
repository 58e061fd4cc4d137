"""A repository's secrets: the credentials of its git URL and the values of its variables.

Kept in the secrets store as ``secrets/repo/<name>`` (one JSON document, 0600), never in the
log: ``repo.registered`` records the URL with ``***`` for its credentials and a flag that
they exist, the settings record the variables' names. Git gets the credentials here
(`auth`), the index command and the agents get the values here (`env`).

Every change goes through `changing`: one at a time, the new secret written before the event
that refers to it is appended, the old one put back if the command is refused. A crash
between the write and the event leaves either an orphan (a registration: `sweep_orphans`
removes it at the next recovery) or values newer than the log's names (a settings change
that was never acknowledged: the names the log holds take their values from the new
document, as the retried request would).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager

import anyio
import msgspec

from projections import DomainError
from projections.repos import Repo
from service.git import Auth
from service.git_inputs import without_userinfo
from service.secrets_store import SecretsStore


class RepoSecret(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    credentials: str | None = None
    """The userinfo of the repository's https:// URL, as written in it."""
    env: dict[str, str] = {}
    """The values of the repository's variables, by name."""


class MissingSecretError(ValueError):
    """The log says a secret exists that the store does not hold (a data directory copied
    without its ``secrets/``, a file removed by hand)."""


_EMPTY = RepoSecret()


class RepoSecrets:
    def __init__(self, store: SecretsStore) -> None:
        self._files = store.kind("repo")
        self._lock = anyio.Lock()

    def get(self, name: str) -> RepoSecret:
        stored = self._files.get(name)
        return _EMPTY if stored is None else msgspec.json.decode(stored, type=RepoSecret)

    @asynccontextmanager
    async def changing(self, name: str) -> AsyncIterator[Change]:
        """Change `name`'s secret around the command that refers to it (see the module)."""
        async with self._lock:
            previous = await anyio.to_thread.run_sync(self.get, name)
            change = Change(self._files, name, previous)
            try:
                yield change
            except DomainError:  # refused: no event, so the log still refers to the old one
                with anyio.CancelScope(shield=True):
                    await change.restore()
                raise

    def auth(self, repo: Repo) -> tuple[str, Auth | None]:
        """The URL git is given for `repo`, and the credentials it sends there."""
        url = repo.spec.git_url
        if not repo.spec.credentials:
            return url, None  # no credentials, or a log that kept them in the URL itself
        credentials = self.get(repo.name).credentials
        if credentials is None:
            raise MissingSecretError(
                f"the credentials of repository {repo.name!r} are missing from the secrets store"
            )
        url = without_userinfo(url)
        return url, Auth(url, credentials)

    def env(self, repo: Repo | None) -> dict[str, str]:
        """The repository's variables with their values: those the settings name, from the
        store; a log written before values left it holds them itself."""
        if repo is None:
            return {}
        values = dict(repo.settings.env)
        if repo.settings.env_names:
            stored = self.get(repo.name).env
            values.update((n, stored[n]) for n in repo.settings.env_names if n in stored)
        return values

    async def sweep_orphans(self, registered: Collection[str]) -> int:
        """Remove the secrets of repositories that are not registered (a registration cut
        short by a crash, an unregistration whose removal was); how many."""
        async with self._lock:
            orphans = [name for name in self._files.ids() if name not in registered]
            for name in orphans:
                await anyio.to_thread.run_sync(self._files.remove, name)
        return len(orphans)


class Change:
    """One repository's secret while a command about it is decided and recorded."""

    def __init__(self, files: SecretsStore, name: str, previous: RepoSecret) -> None:
        self._files = files
        self._name = name
        self.previous = previous
        self._written = False

    async def write(self, secret: RepoSecret) -> None:
        """Before the command: the event it appends may refer to `secret`."""
        self._written = True
        await anyio.to_thread.run_sync(self._save, secret)

    async def remove(self) -> None:
        """After the command that made the secret useless is durable."""
        await anyio.to_thread.run_sync(self._save, _EMPTY)

    async def restore(self) -> None:
        if self._written:
            await anyio.to_thread.run_sync(self._save, self.previous)

    def _save(self, secret: RepoSecret) -> None:
        if secret == _EMPTY:
            self._files.remove(self._name)
        else:
            self._files.put(self._name, msgspec.json.encode(secret).decode())
