"""A recording filesystem: the real one, plus a trace of every operation that changes what a
power cut could leave behind, in the order the engine made them.

The trace speaks of inodes and directory entries, not paths, because that is what durability is
about: a file's bytes become durable by an fsync of the file, its name by an fsync of its
directory (see `crash.py`). The test adds `Ack` markers: what a caller was told is durable.
"""

from __future__ import annotations

import errno
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from eventlog import FileSystem
from eventlog.vfs import DIR_MODE, FILE_MODE


@dataclass(frozen=True)
class Create:
    directory: int
    name: str
    inode: int
    is_dir: bool


@dataclass(frozen=True)
class Rename:
    source_dir: int
    source: str
    target_dir: int
    target: str
    inode: int


@dataclass(frozen=True)
class Unlink:
    directory: int
    name: str


@dataclass(frozen=True)
class Write:
    inode: int
    offset: int
    data: bytes


@dataclass(frozen=True)
class SetSize:
    """ftruncate (or O_TRUNC): cut, or extend with zeros."""

    inode: int
    size: int


@dataclass(frozen=True)
class Allocate:
    """fallocate: the file is at least `end` bytes long, the new ones zeros."""

    inode: int
    end: int


@dataclass(frozen=True)
class Sync:
    """fsync or fdatasync: every earlier data operation on the inode is durable."""

    inode: int


@dataclass(frozen=True)
class DirSync:
    """fsync of a directory: every earlier entry operation in it is durable."""

    directory: int


@dataclass(frozen=True)
class Ack:
    """The caller was told these records are durable: seq -> payload."""

    records: dict[int, bytes]


Op = Create | Rename | Unlink | Write | SetSize | Allocate | Sync | DirSync | Ack
ROOT_INODE = 0


class RecordingFS(FileSystem):
    """Everything under `root` (which must start empty) is recorded; `root` itself is durable.

    The real operation runs first; its record is appended under a lock, so the trace's order
    is an order the operations really happened in. Operations on one file or directory come
    from one thread at a time in the engine, which is all the per-inode durability model needs.
    `fail_datasync_after`: once it reaches 0, fdatasync raises EIO without syncing (as a disk
    that lost the write would), to test what open trusts after a failed append.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.trace: list[Op] = []
        self.fail_datasync_after: int | None = None
        self._lock = threading.Lock()
        self._names: dict[Path, int] = {root: ROOT_INODE}
        self._fds: dict[int, list[int]] = {}
        """fd -> [inode, position]."""
        self._next_inode = ROOT_INODE + 1

    def note_ack(self, records: dict[int, bytes]) -> None:
        with self._lock:
            self.trace.append(Ack(dict(records)))

    def _record(self, op: Op) -> None:
        with self._lock:
            self.trace.append(op)

    def _new_inode(self) -> int:
        inode = self._next_inode
        self._next_inode += 1
        return inode

    def _inode(self, fd: int) -> int:
        return self._fds[fd][0]

    # -- files ---------------------------------------------------------------------------------

    def open(self, path: Path, flags: int, mode: int = FILE_MODE) -> int:
        with self._lock:
            fd = super().open(path, flags, mode)
            inode = self._names.get(path)
            if inode is None:
                inode = self._new_inode()
                self._names[path] = inode
                self.trace.append(Create(self._names[path.parent], path.name, inode, False))
            elif flags & os.O_TRUNC:
                self.trace.append(SetSize(inode, 0))
            self._fds[fd] = [inode, 0]
            return fd

    def close(self, fd: int) -> None:
        with self._lock:
            self._fds.pop(fd, None)
        super().close(fd)

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        written = super().pwrite(fd, data, offset)
        self._record(Write(self._inode(fd), offset, bytes(data[:written])))
        return written

    def write(self, fd: int, data: bytes | memoryview) -> int:
        written = super().write(fd, data)
        entry = self._fds[fd]
        self._record(Write(entry[0], entry[1], bytes(data[:written])))
        entry[1] += written
        return written

    def allocate(self, fd: int, offset: int, length: int) -> None:
        super().allocate(fd, offset, length)
        self._record(Allocate(self._inode(fd), offset + length))

    def truncate(self, fd: int, length: int) -> None:
        super().truncate(fd, length)
        self._record(SetSize(self._inode(fd), length))

    def fsync(self, fd: int) -> None:
        super().fsync(fd)
        self._record(Sync(self._inode(fd)))

    def fdatasync(self, fd: int) -> None:
        if self.fail_datasync_after is not None:
            if self.fail_datasync_after == 0:
                raise OSError(errno.EIO, "injected EIO: the write did not reach the disk")
            self.fail_datasync_after -= 1
        super().fdatasync(fd)
        self._record(Sync(self._inode(fd)))

    # -- names ---------------------------------------------------------------------------------

    def rename(self, source: Path, target: Path) -> None:
        with self._lock:
            super().rename(source, target)
            inode = self._names.pop(source)
            self._names[target] = inode
            self.trace.append(
                Rename(
                    self._names[source.parent],
                    source.name,
                    self._names[target.parent],
                    target.name,
                    inode,
                )
            )

    def unlink(self, path: Path) -> None:
        with self._lock:
            super().unlink(path)
            self._names.pop(path)
            self.trace.append(Unlink(self._names[path.parent], path.name))

    def mkdir(self, path: Path, mode: int = DIR_MODE) -> None:
        with self._lock:
            super().mkdir(path, mode)
            inode = self._new_inode()
            self._names[path] = inode
            self.trace.append(Create(self._names[path.parent], path.name, inode, True))

    def fsync_dir(self, path: Path) -> None:
        super().fsync_dir(path)
        self._record(DirSync(self._names[path]))


class NoDatasync(RecordingFS):
    """Deliberately broken: fdatasync does nothing (a writer that acknowledges unsynced data)."""

    def fdatasync(self, fd: int) -> None:
        return


class NoDirSyncAfterNewSegment(RecordingFS):
    """Deliberately broken: the directory fsync that follows renaming a new segment into place
    is skipped, so the segment's name may not survive a power cut."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._skip_next_dir_sync = False

    def rename(self, source: Path, target: Path) -> None:
        super().rename(source, target)
        self._skip_next_dir_sync = target.name.endswith(".seg")

    def fsync_dir(self, path: Path) -> None:
        if self._skip_next_dir_sync:
            self._skip_next_dir_sync = False
            return
        super().fsync_dir(path)


class NoSyncBeforeJudging(RecordingFS):
    """Deliberately broken: the fsync of a segment made right after opening it (before any
    write: open's "make what I am about to judge durable") does nothing."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._untouched: set[int] = set()

    def open(self, path: Path, flags: int, mode: int = FILE_MODE) -> int:
        fd = super().open(path, flags, mode)
        if path.name.endswith(".seg"):
            self._untouched.add(fd)
        return fd

    def close(self, fd: int) -> None:
        self._untouched.discard(fd)
        super().close(fd)

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        self._untouched.discard(fd)
        return super().pwrite(fd, data, offset)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        self._untouched.discard(fd)
        return super().write(fd, data)

    def allocate(self, fd: int, offset: int, length: int) -> None:
        self._untouched.discard(fd)
        super().allocate(fd, offset, length)

    def truncate(self, fd: int, length: int) -> None:
        self._untouched.discard(fd)
        super().truncate(fd, length)

    def fsync(self, fd: int) -> None:
        if fd in self._untouched:
            return
        super().fsync(fd)
