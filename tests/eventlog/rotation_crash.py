"""Child process for the rotation crash-point test: SIGKILL itself at one step of rotation.

usage: rotation_crash.py LOG_DIR POINT NTH

Opens the log with tiny segments through a filesystem (the engine's seam) that, during the NTH
rotation, kills the process at POINT:

  before-temp-create  after the old segment's sync (and close), before the temp file exists
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

from eventlog import EventLog, FileSystem
from eventlog.atomic import TEMP_PREFIX
from eventlog.vfs import FILE_MODE

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


def _is_temp(path: Path) -> bool:
    return path.name.startswith(TEMP_PREFIX) and path.name.endswith(".seg")


class KillAt(FileSystem):
    """Counts rotations by the temp segments they create (once armed), and dies at `point` of
    the `nth` one."""

    def __init__(self, point: str, nth: int) -> None:
        self.point = point
        self.nth = nth
        self.armed = False
        self.rotations = 0
        self.renamed = False
        self.new_segment: Path | None = None
        self.paths: dict[int, Path] = {}

    def _here(self, point: str) -> bool:
        return self.point == point and self.rotations == self.nth

    def open(self, path: Path, flags: int, mode: int = FILE_MODE) -> int:
        if self.armed and _is_temp(path) and flags & os.O_CREAT:
            self.rotations += 1
            if self._here("before-temp-create"):
                _die()
        fd = super().open(path, flags, mode)
        self.paths[fd] = path
        return fd

    def close(self, fd: int) -> None:
        self.paths.pop(fd, None)
        super().close(fd)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        if _is_temp(self.paths.get(fd, Path())) and self._here("partial-header"):
            super().write(fd, data[: len(data) // 2])
            _die()
        written = super().write(fd, data)
        if _is_temp(self.paths.get(fd, Path())) and self._here("after-header"):
            _die()
        return written

    def fsync(self, fd: int) -> None:
        super().fsync(fd)
        if _is_temp(self.paths.get(fd, Path())) and self._here("after-temp-sync"):
            _die()

    def rename(self, source: Path, target: Path) -> None:
        super().rename(source, target)
        if self.rotations == self.nth and _is_temp(source):
            self.renamed = True
            self.new_segment = target
            if self._here("after-rename"):
                _die()

    def fsync_dir(self, path: Path) -> None:
        super().fsync_dir(path)
        if self.point == "after-dir-sync" and self.renamed:
            _die()

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        written = super().pwrite(fd, data, offset)
        if self.point == "after-first-write" and self.paths.get(fd) == self.new_segment:
            _die()
        return written


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
    fs = KillAt(point, nth)
    log = EventLog.open(path, segment_bytes=16 * 1024, fs=fs)
    fs.armed = True
    tasks = [asyncio.create_task(_writer(log, random.Random(i))) for i in range(8)]
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)


if __name__ == "__main__":
    asyncio.run(main())
