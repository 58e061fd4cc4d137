"""One writer per log: an exclusive, non-blocking flock on `log/LOCK`.

The kernel drops the lock when the owner dies (even by SIGKILL), so a stale lock file never
blocks a restart. The owner's pid is written inside only to name it in the error.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from eventlog import fsutil
from eventlog.errors import LogLockedError

LOCK_NAME = "LOCK"


class DirLock:
    """Holds `flock(LOCK_EX)` on `<dir>/LOCK` until `release`."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_NAME
        existed = self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_pid(fd)
            os.close(fd)
            raise LogLockedError(directory, owner) from None
        if not existed:
            fsutil.fsync_dir(directory)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(ValueError):
        return int(os.pread(fd, 32, 0).decode(errors="replace").strip())
    return None


def probe_owner(directory: Path) -> int | None:
    """Pid of the process holding the log's lock, or None when nobody holds it."""
    try:
        lock = DirLock(directory)
    except LogLockedError as err:
        return err.pid or -1
    lock.release()
    return None
