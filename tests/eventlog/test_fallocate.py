"""Filesystems without fallocate (FUSE, some NFS mounts, ramfs): the log works the same, its
segments extended with ftruncate instead of reserved.

Regression (defect 9): `posix_fallocate` falls back to glibc's emulation there, which reads
the file; on a segment opened write-only that failed with a raw EBADF, so reopening an existing
log failed whenever the allocation had to grow at open.
"""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventlog import EventLog, FileSystem
from eventlog.log import PREALLOCATE_STEP
from tests.eventlog.helpers import Model, append_groups, segment_files

SEGMENT = 32 * 1024


class NoFallocate(FileSystem):
    """A filesystem whose fallocate(2) answers EOPNOTSUPP, as FUSE and ramfs do."""

    def __init__(self) -> None:
        self.refused = 0

    def allocate(self, fd: int, offset: int, length: int) -> None:
        self.refused += 1
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")


def _exercise(log_dir: Path, fs: FileSystem) -> Model:
    """Appends across rotations, a reopen whose allocation must grow at open, more appends."""
    model = Model()

    async def append(log: EventLog, count: int) -> None:
        groups = [[os.urandom(700 + i) for _ in range(1 + i % 3)] for i in range(count)]
        for seqs, group in zip(await append_groups(log, groups), groups, strict=True):
            model.add_group(seqs, group)

    with EventLog.open(log_dir, segment_bytes=SEGMENT, fs=fs) as log:
        asyncio.run(append(log, 120))
        checkpoint = log.checkpoint
    assert checkpoint is not None and len(segment_files(log_dir)) > 3
    newest = segment_files(log_dir)[-1]
    os.truncate(newest, checkpoint.end)  # no free space left: the reopen must allocate
    with EventLog.open(log_dir, segment_bytes=SEGMENT, fs=fs) as log:
        assert newest.stat().st_size > checkpoint.end, "open made room for the next append"
        asyncio.run(append(log, 30))
        model.check_exact(list(log.read()))
    with EventLog.open_readonly(log_dir, fs=fs) as reader:
        model.check_exact(list(reader.read()))
    return model


def test_a_filesystem_without_fallocate_through_the_seam(tmp_path: Path) -> None:
    fs = NoFallocate()
    _exercise(tmp_path / "log", fs)
    assert fs.refused > 3, "the engine asked, was refused, and went on"


@pytest.fixture
def ramfs(tmp_path: Path) -> Iterator[Path]:
    """A real filesystem with no fallocate: ramfs, mounted for the test (needs root)."""
    mount = tmp_path / "ramfs"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "ramfs", "ramfs", str(mount)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount ramfs here (needs root): {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_real_filesystem_without_fallocate(ramfs: Path) -> None:
    probe = ramfs / "probe"
    probe.write_bytes(b"x" * 5000)
    fd = os.open(probe, os.O_RDWR)
    try:
        with pytest.raises(OSError) as refused:
            FileSystem().allocate(fd, 0, 2 * PREALLOCATE_STEP)
        assert refused.value.errno == errno.EOPNOTSUPP, "ramfs really has no fallocate"
    finally:
        os.close(fd)
    fd = os.open(probe, os.O_WRONLY)  # what the old engine did, and what failed
    try:
        with pytest.raises(OSError) as emulated:
            os.posix_fallocate(fd, 0, 2 * PREALLOCATE_STEP)
        assert emulated.value.errno == errno.EBADF
    finally:
        os.close(fd)
    _exercise(ramfs / "log", FileSystem())
