"""The filesystem seam: every file operation of the engine goes through one `FileSystem`.

Real by default (`REAL`). Tests pass a subclass to inject faults (EIO from fdatasync, a
filesystem without fallocate) or to record every operation and rebuild the states a power cut
could leave (tests/eventlog/powercut). Modelled on raft-wal's `types.VFS`, but at the level of
file descriptors: the append path pays one method call per batch, not an object per file.

Only what the engine needs is here. Namespace changes (create, rename, unlink, mkdir) are
separate methods from data changes because they become durable separately: a name only by
an fsync of its directory (`fsync_dir`), bytes only by an fsync of the file.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

FILE_MODE = 0o600
"""Every file the engine creates: the log, snapshots and secrets are the server user's alone
(the log holds password and token hashes). Passed explicitly, so a library user who never set
a umask is as safe as the server, which also sets one."""
DIR_MODE = 0o700
"""Every directory the engine creates, for the same reason."""


class DirEntry(NamedTuple):
    name: str
    is_file: bool
    """A regular file (symlinks followed); a directory or anything else is not."""


def _libc_fallocate() -> Callable[[int, int, int, int], int] | None:
    """glibc's fallocate(2) wrapper: the system call itself, with no emulation behind it.

    `os.posix_fallocate` falls back to writing a byte per block when the filesystem lacks
    fallocate, which reads the file first and fails on a write-only descriptor; calling the
    system call directly lets the engine see EOPNOTSUPP and choose its own fallback.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.fallocate64
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    function.restype = ctypes.c_int
    return function


_FALLOCATE = _libc_fallocate()


class FileSystem:
    """The real filesystem. Subclass and override to inject faults or record operations."""

    # -- files, by descriptor ------------------------------------------------------------------

    def open(self, path: Path, flags: int, mode: int = FILE_MODE) -> int:
        return os.open(path, flags | os.O_CLOEXEC, mode)

    def close(self, fd: int) -> None:
        os.close(fd)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        return os.pread(fd, size, offset)

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        """May write less than asked; `fsutil.write_all_at` loops."""
        return os.pwrite(fd, data, offset)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        return os.write(fd, data)

    def size(self, fd: int) -> int:
        return os.fstat(fd).st_size

    def allocate(self, fd: int, offset: int, length: int) -> None:
        """fallocate(2), mode 0: reserve blocks reading as zeros, extending the file.

        Raises OSError(EOPNOTSUPP) where the filesystem (or platform) has no fallocate.
        """
        if _FALLOCATE is None:
            raise OSError(errno.EOPNOTSUPP, "fallocate is not available on this platform")
        if _FALLOCATE(fd, 0, offset, length) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))

    def truncate(self, fd: int, length: int) -> None:
        os.ftruncate(fd, length)

    def fsync(self, fd: int) -> None:
        """Data and all metadata of the file."""
        os.fsync(fd)

    def fdatasync(self, fd: int) -> None:
        """Data, and the metadata needed to read it back (the size that exposes it)."""
        os.fdatasync(fd)

    def lock(self, fd: int) -> None:
        """Exclusive, non-blocking; BlockingIOError when another process holds it."""
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    # -- whole files and names -----------------------------------------------------------------

    def read_file(self, path: Path) -> bytes:
        with open(path, "rb") as handle:
            return handle.read()

    def rename(self, source: Path, target: Path) -> None:
        """Atomically replaces `target` if it exists (rename(2))."""
        os.rename(source, target)

    def unlink(self, path: Path) -> None:
        os.unlink(path)

    def mkdir(self, path: Path, mode: int = DIR_MODE) -> None:
        os.mkdir(path, mode)

    def fsync_dir(self, path: Path) -> None:
        """Persist the entries of a directory: creations, renames and unlinks inside it."""
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def list_dir(self, path: Path) -> list[DirEntry]:
        with os.scandir(path) as entries:
            return [DirEntry(entry.name, entry.is_file()) for entry in entries]

    def exists(self, path: Path) -> bool:
        return os.path.lexists(path)

    def is_dir(self, path: Path) -> bool:
        return os.path.isdir(path)


REAL = FileSystem()
"""The default everywhere: the operating system's filesystem."""
