"""Where things live inside a data directory. One place, so tools and server agree."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from eventlog.errors import LogError
from eventlog.lock import LOCK_NAME
from eventlog.segment import SUFFIX


class DataDir(NamedTuple):
    root: Path
    log: Path

    @classmethod
    def at(cls, root: Path) -> DataDir:
        return cls(root, root / "log")

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    @property
    def workspaces(self) -> Path:
        return self.root / "workspaces"

    @property
    def staging(self) -> Path:
        return self.root / "staging"


def resolve(path: Path) -> DataDir:
    """Accept a data directory or a log directory itself, as every CLI command does.

    For a bare log directory, its parent plays the data directory (where snapshots live).
    """
    if (path / "log").is_dir():
        return DataDir.at(path)
    if path.is_dir() and (
        (path / LOCK_NAME).exists() or any(p.name.endswith(SUFFIX) for p in path.iterdir())
    ):
        return DataDir(path.parent, path)
    raise LogError(f"no rewind log at {path} (expected a data directory or its log/ directory)")
