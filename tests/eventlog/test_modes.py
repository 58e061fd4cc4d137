"""Every file the engine creates is 0600 and every directory 0700, from creation, even in a
process whose umask lets everything through: the log holds password and token hashes, and a
library user of the engine may never have set a umask (the server sets one too)."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventlog import EventLog, atomic_write, fsutil, write_checked
from eventlog.lock import DirLock
from eventlog.repair import truncate_after
from eventlog.snapshot import SnapshotStore


@pytest.fixture
def no_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def open_to_others(root: Path) -> list[str]:
    """Every path under `root` (itself included) that group or others may read, write or
    enter, with its mode."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            found.append(f"{path.relative_to(root.parent)} {mode:04o}")
    return found


async def _fill(log_dir: Path) -> None:
    with EventLog.open(log_dir, segment_bytes=4096) as log:
        for index in range(40):
            await log.append(b"x" * 200 + str(index).encode())


def test_files_and_directories_the_engine_makes_are_private(tmp_path: Path, no_umask: None) -> None:
    data = tmp_path / "data"
    log_dir = data / "log"
    asyncio.run(_fill(log_dir))  # segments (rotated), LOCK, the directories on the way
    assert len(list(log_dir.glob("*.seg"))) > 1, "the log rotated"
    SnapshotStore(data / "snapshots").write(40, b"state")
    fsutil.make_dirs(data / "deep" / "er")
    atomic_write(data / "deep" / "plain", b"bytes")
    write_checked(data / "deep" / "er" / "sealed", b"bytes")
    DirLock(data / "deep").release()
    truncate_after(log_dir, 20, data / "snapshots")  # a backup directory, what moved into it
    assert list(log_dir.glob("repair-*/*")), "the repair kept what it cut"
    assert open_to_others(data) == []


def test_the_check_sees_a_file_made_without_a_mode(tmp_path: Path, no_umask: None) -> None:
    """The test above proves something: with the umask off, a plain create is 0666."""
    fsutil.make_dirs(tmp_path / "data")
    (tmp_path / "data" / "loose").write_bytes(b"")
    assert open_to_others(tmp_path / "data") == ["data/loose 0666"]
