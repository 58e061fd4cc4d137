"""Webhook secrets, kept outside the log: the log is readable by every operator and tool.

One file per callback, ``secrets/<callback id>``, mode 0600, written with ``write_checked``
(atomic, checksummed) BEFORE the job that declares the callback is created, so a durable job
never lacks its secret; a secret whose job never became durable is an orphan the retention
sweep removes with the job's other leftovers.
"""

from __future__ import annotations

import os
from pathlib import Path

from eventlog import fsync_dir, make_dirs, read_checked, write_checked


class SecretsStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, callback_id: str) -> Path:
        if not callback_id or "/" in callback_id or callback_id.startswith("."):
            raise ValueError(f"bad callback id {callback_id!r}")
        return self.directory / callback_id

    def put(self, callback_id: str, secret: str) -> None:
        if not self.directory.is_dir():
            make_dirs(self.directory)
            os.chmod(self.directory, 0o700)
        write_checked(self._path(callback_id), secret.encode(), mode=0o600)

    def get(self, callback_id: str) -> str | None:
        try:
            return read_checked(self._path(callback_id)).decode()
        except FileNotFoundError:
            return None

    def remove(self, callback_id: str) -> None:
        path = self._path(callback_id)
        if path.exists():
            path.unlink()
            fsync_dir(self.directory)

    def ids(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.iterdir() if not p.name.startswith("."))
