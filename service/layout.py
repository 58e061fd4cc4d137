"""Where things live inside a data directory. One place, so tools and server agree."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from eventlog.errors import LogError
from eventlog.lock import LOCK_NAME
from eventlog.segment import SUFFIX

LOG_NAME = "log"


class DataDir(NamedTuple):
    root: Path
    log: Path

    @classmethod
    def at(cls, root: Path) -> DataDir:
        return cls(root, root / LOG_NAME)

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

    For a bare log directory, its parent plays the data directory (where snapshots live). The
    parent is taken of the absolute path: `Path(".").parent` is `.` itself, which put the
    snapshots of `rewind snapshot .` run inside `D/log` into `D/log/snapshots`.
    """
    absolute = Path(os.path.abspath(path))
    if (absolute / LOG_NAME).is_dir():
        return DataDir.at(absolute)
    if _holds_a_log(absolute):
        return DataDir(absolute.parent, absolute)
    raise LogError(f"no rewind log at {path} (expected a data directory or its log/ directory)")


def resolve_new(path: Path) -> DataDir:
    """Like `resolve`, for a command that may create the data directory.

    A directory that holds a log, or that does not exist yet but is named `log`, is the log
    directory of its parent: `rewind simulate D/log` fills `D/log`, never `D/log/log`.
    """
    absolute = Path(os.path.abspath(path))
    if (absolute / LOG_NAME).is_dir():
        return DataDir.at(absolute)
    if _holds_a_log(absolute) or absolute.name == LOG_NAME:
        return DataDir(absolute.parent, absolute)
    return DataDir.at(absolute)


def _holds_a_log(path: Path) -> bool:
    return path.is_dir() and (
        (path / LOCK_NAME).exists() or any(p.name.endswith(SUFFIX) for p in path.iterdir())
    )
