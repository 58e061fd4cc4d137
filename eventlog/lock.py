"""One writer per log: an exclusive, non-blocking flock on `log/LOCK`.

The kernel drops the lock when the owner dies (even by SIGKILL), so a stale lock file never
blocks a restart. The owner's pid is written inside only to name it in the error.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from eventlog.errors import LogLockedError
from eventlog.vfs import FILE_MODE, REAL, FileSystem

LOCK_NAME = "LOCK"


class DirLock:
    """Holds `flock(LOCK_EX)` on `<dir>/LOCK` until `release`."""

    def __init__(self, directory: Path, fs: FileSystem = REAL) -> None:
        self.path = directory / LOCK_NAME
        self._fs = fs
        existed = fs.exists(self.path)
        fd = fs.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fs.lock(fd)
        except BlockingIOError:
            owner = _read_pid(fs, fd)
            fs.close(fd)
            raise LogLockedError(directory, owner) from None
        if not existed:
            fs.fsync_dir(directory)
        fs.truncate(fd, 0)
        fs.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            self._fs.close(self._fd)
            self._fd = None


def _read_pid(fs: FileSystem, fd: int) -> int | None:
    with contextlib.suppress(ValueError):
        return int(fs.pread(fd, 32, 0).decode(errors="replace").strip())
    return None
