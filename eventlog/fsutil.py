"""Durability primitives. Every namespace change is followed by an fsync of its directory.

The functions are looked up through this module at call time so a test can replace
`fsutil.datasync` with one that raises EIO and watch the log fail safely.
"""

from __future__ import annotations

import os
from pathlib import Path


def datasync(fd: int) -> None:
    """Make a file's data (and the size that exposes it) durable."""
    os.fdatasync(fd)


def fullsync(fd: int) -> None:
    """Make a file's data and all its metadata durable."""
    os.fsync(fd)


def fsync_dir(path: Path) -> None:
    """Persist the entries of a directory: creations, renames and unlinks inside it."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fullsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path) -> None:
    """mkdir -p whose every new level is durable in its parent."""
    path = path.absolute()
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            continue
        fsync_dir(directory.parent)


def write_all_at(fd: int, data: bytes, offset: int) -> None:
    """pwrite all of `data` at `offset`, looping over short writes."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def preallocate(fd: int, size: int) -> None:
    """Reserve `size` bytes (reading as zeros) so appends inside them change no file size.

    fdatasync of a write that grows a file must also commit the new size to the journal; inside
    allocated space it need not, which makes every durable append markedly cheaper (etcd's WAL
    preallocates its segments for the same reason).
    """
    if os.fstat(fd).st_size < size:
        os.posix_fallocate(fd, 0, size)
        fullsync(fd)


def write_all(fd: int, data: bytes) -> None:
    """os.write may write less than asked (signals, full disks); loop until all is written."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
