"""Child process for the rotation crash-point test: SIGKILL itself at one step of rotation.

usage: rotation_crash.py LOG_DIR POINT NTH

Opens the log with tiny segments, then wraps the primitives rotation uses (fsutil functions,
os.open, os.rename) so that during the NTH rotation the process kills itself at POINT:

  before-temp-create  after the old segment's datasync (and close), before the temp file exists
  partial-header      after writing only part of the new segment's header
  after-header        after the temp file is created and its header written
  after-temp-sync     after the temp file's fsync
  after-rename        after the rename to `.seg`, before the directory fsync
  after-dir-sync      after the directory fsync, before any record reaches the new segment
  after-first-write   after the first write to the new segment, before its datasync

Writers print `seq sha256(payload)` for every acknowledged append, like crash_writer.py. The
faults live here, in the test's child, never in the engine.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from eventlog import EventLog, fsutil
from eventlog.segment import TEMP_SUFFIX

POINTS = [
    "before-temp-create",
    "partial-header",
    "after-header",
    "after-temp-sync",
    "after-rename",
    "after-dir-sync",
    "after-first-write",
]


def _die() -> None:
    os.write(2, f"killing myself at {sys.argv[2]}\n".encode())
    os.kill(os.getpid(), signal.SIGKILL)


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def install(point: str, nth: int) -> None:
    """Arm the kill; rotations are counted by the temp segments they create."""
    rotations = 0
    renamed = False
    new_segment = ""
    real_open = os.open
    real_rename = os.rename
    real_write_all = fsutil.write_all
    real_write_all_at = fsutil.write_all_at
    real_fullsync = fsutil.fullsync
    real_fsync_dir = fsutil.fsync_dir

    def is_temp(path: object) -> bool:
        return str(path).endswith(TEMP_SUFFIX)

    def hooked_open(path: str | bytes | os.PathLike[str], flags: int, *args: int) -> int:
        nonlocal rotations
        if is_temp(path) and flags & os.O_CREAT:
            rotations += 1
            if rotations == nth and point == "before-temp-create":
                _die()
        return real_open(path, flags, *args)

    def hooked_write_all(fd: int, data: bytes) -> None:
        target = _fd_path(fd)
        if rotations == nth and is_temp(target):
            if point == "partial-header":
                real_write_all(fd, data[: len(data) // 2])
                _die()
            real_write_all(fd, data)
            if point == "after-header":
                _die()
            return
        real_write_all(fd, data)

    def hooked_write_all_at(fd: int, data: bytes, offset: int) -> None:
        real_write_all_at(fd, data, offset)
        if point == "after-first-write" and new_segment and _fd_path(fd) == new_segment:
            _die()

    def hooked_fullsync(fd: int) -> None:
        real_fullsync(fd)
        if point == "after-temp-sync" and rotations == nth and is_temp(_fd_path(fd)):
            _die()

    def hooked_rename(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        nonlocal renamed, new_segment
        real_rename(src, dst)
        if rotations == nth and is_temp(src):
            renamed = True
            new_segment = os.path.realpath(dst)
            if point == "after-rename":
                _die()

    def hooked_fsync_dir(path: Path) -> None:
        real_fsync_dir(path)
        if point == "after-dir-sync" and renamed:
            _die()

    os.open = hooked_open  # type: ignore[assignment]
    os.rename = hooked_rename  # type: ignore[assignment]
    fsutil.write_all = hooked_write_all
    fsutil.write_all_at = hooked_write_all_at
    fsutil.fullsync = hooked_fullsync
    fsutil.fsync_dir = hooked_fsync_dir


async def _writer(log: EventLog, rng: random.Random) -> None:
    while True:
        if rng.random() < 0.3:
            payloads = [rng.randbytes(rng.randrange(1, 900)) for _ in range(rng.randrange(1, 4))]
            seqs = await log.append_many(payloads)
        else:
            payloads = [rng.randbytes(rng.randrange(1, 1500))]
            seqs = [await log.append(payloads[0])]
        sys.stdout.write(
            "".join(
                f"{seq} {hashlib.sha256(p).hexdigest()}\n"
                for seq, p in zip(seqs, payloads, strict=True)
            )
        )
        sys.stdout.flush()


async def main() -> None:
    path, point, nth = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    assert point in POINTS, point
    log = EventLog.open(path, segment_bytes=16 * 1024)
    install(point, nth)
    tasks = [asyncio.create_task(_writer(log, random.Random(i))) for i in range(8)]
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)


if __name__ == "__main__":
    asyncio.run(main())
