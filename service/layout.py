"""Where things live inside a data directory. One place, so tools and server agree.

Paths recorded in events (workspaces, run directories, cleanups) are relative to the data
directory unless absolute, so a data directory can be moved as a whole.
"""

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
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def repos(self) -> Path:
        """Registered repositories' clones (``repos/<name>``), prepared under their locks."""
        return self.root / "repos"

    @property
    def runs(self) -> Path:
        """Agent run directories (``runs/<job>``): identity, heartbeat, output, exit code."""
        return self.root / "runs"

    @property
    def archive(self) -> Path:
        """Uncommitted changes of cleaned-up workspaces (``archive/<job>``)."""
        return self.root / "archive"

    @property
    def secrets(self) -> Path:
        """Webhook secrets, one 0600 file per callback: never in the log."""
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

    For a bare log directory, its parent plays the data directory (where snapshots live).
    """
    if (path / "log").is_dir():
        return DataDir.at(path)
    if path.is_dir() and (
        (path / LOCK_NAME).exists() or any(p.name.endswith(SUFFIX) for p in path.iterdir())
    ):
        return DataDir(path.parent, path)
    raise LogError(f"no rewind log at {path} (expected a data directory or its log/ directory)")
