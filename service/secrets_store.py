"""Secrets, kept outside the log: the log is readable by every operator and tool.

One file per secret, mode 0600 in 0700 directories, written with ``write_checked`` (atomic,
checksummed) BEFORE the event that refers to it is appended, so a durable event never lacks
its secret. The layout:

    secrets/<callback id>    a webhook's signing secret (``job-...-cb0``)
    secrets/repo/<name>      a repository's git credentials and variable values
                             (``service.repo_secrets``)

Webhook secrets stay at the top, where earlier versions put them; every other kind has a
directory of its own (``kind``), whose name no callback id can take. A secret whose event
never became durable is an orphan that a sweep removes.
"""

from __future__ import annotations

from pathlib import Path

from eventlog import fsync_dir, make_dirs, read_checked, write_checked


class SecretsStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def kind(self, name: str) -> SecretsStore:
        """The store of one kind of secret, in its own directory."""
        return SecretsStore(self._path(name))

    def _path(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"bad secret name {key!r}")
        return self.directory / key

    def put(self, key: str, secret: str) -> None:
        make_dirs(self.directory)
        write_checked(self._path(key), secret.encode())

    def get(self, key: str) -> str | None:
        try:
            return read_checked(self._path(key)).decode()
        except FileNotFoundError:
            return None

    def remove(self, key: str) -> None:
        path = self._path(key)
        if path.exists():
            path.unlink()
            fsync_dir(self.directory)

    def ids(self) -> list[str]:
        """The secrets of this kind (not the directories of other kinds)."""
        if not self.directory.is_dir():
            return []
        return sorted(
            p.name for p in self.directory.iterdir() if p.is_file() and not p.name.startswith(".")
        )
