"""Durability helpers over the filesystem seam. Every namespace change is followed by an fsync
of its directory; every loop over a short write lives here once."""

from __future__ import annotations

import errno
from pathlib import Path

from eventlog.vfs import DIR_MODE, REAL, FileSystem

_NO_FALLOCATE = {errno.EOPNOTSUPP, errno.ENOSYS}


def fsync_dir(path: Path, fs: FileSystem = REAL) -> None:
    """Persist the entries of a directory: creations, renames and unlinks inside it."""
    fs.fsync_dir(path)


def make_dirs(path: Path, fs: FileSystem = REAL) -> None:
    """mkdir -p whose every new level is durable in its parent and private (0700)."""
    path = path.absolute()
    missing: list[Path] = []
    probe = path
    while not fs.exists(probe):
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            fs.mkdir(directory, DIR_MODE)
        except FileExistsError:
            continue
        fs.fsync_dir(directory.parent)


def write_all_at(fs: FileSystem, fd: int, data: bytes, offset: int) -> None:
    """pwrite all of `data` at `offset`, looping over short writes."""
    view = memoryview(data)
    while view:
        written = fs.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def write_all(fs: FileSystem, fd: int, data: bytes) -> None:
    """write may write less than asked (signals, full disks); loop until all is written."""
    view = memoryview(data)
    while view:
        written = fs.write(fd, view)
        view = view[written:]


def preallocate(fs: FileSystem, fd: int, size: int) -> None:
    """Grow the file to `size` bytes reading as zeros, durably, reserving the blocks if the
    filesystem can.

    fdatasync of a write that allocates blocks or grows a file must also commit that metadata;
    inside reserved space it need not, which makes every durable append markedly cheaper
    (etcd's WAL preallocates its segments for the same reason). Where fallocate(2) is missing
    (FUSE, some NFS mounts, ramfs) the file is extended with ftruncate instead: the appends stay
    correct, they only pay for their allocation at their own fdatasync.
    """
    current = fs.size(fd)
    if current >= size:
        return
    try:
        fs.allocate(fd, current, size - current)
    except OSError as err:
        if err.errno not in _NO_FALLOCATE:
            raise
        fs.truncate(fd, size)
    fs.fsync(fd)
