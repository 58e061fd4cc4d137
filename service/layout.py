"""Where things live inside a data directory. One place, so tools and server agree.

Paths recorded in events (workspaces, run directories, cleanups) are relative to the data
directory unless absolute, so a data directory can be moved as a whole.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from eventlog import LOCK_NAME, SEGMENT_SUFFIX, LogError

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
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def repos(self) -> Path:
        """Registered repositories' clones (``repos/<name>``), prepared under their locks."""
        return self.root / "repos"

    @property
    def archive(self) -> Path:
        """Uncommitted changes of cleaned-up workspaces (``archive/<job>``)."""
        return self.root / "archive"

    @property
    def secrets(self) -> Path:
        """Secrets, never in the log: one 0600 file per webhook, ``repo/<name>`` per
        repository (see ``secrets_store``)."""
        return self.root / "secrets"

    @property
    def admin_token(self) -> Path:
        return self.root / "admin-token"

    def path(self, recorded: str) -> Path:
        """A path as events record it (relative to the data directory, or absolute)."""
        candidate = Path(recorded)
        return candidate if candidate.is_absolute() else self.root / candidate


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
        (path / LOCK_NAME).exists() or any(p.name.endswith(SEGMENT_SUFFIX) for p in path.iterdir())
    )
