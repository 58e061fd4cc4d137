"""A failed fsync or write poisons the log: the append fails, queued and later ones fail, and a
reopen still holds every acknowledged record (the failed batch may or may not have landed: its
outcome is unknown). Faults are injected through the filesystem seam."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
import time
from pathlib import Path

import pytest

from eventlog import EventLog, FileSystem, LogFailedError
from tests.eventlog.helpers import segment_files


class FailingSync(FileSystem):
    """fdatasync works `calls` times once armed, then blocks until released and raises EIO."""

    def __init__(self, calls: int) -> None:
        self.calls = calls
        self.armed = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def fdatasync(self, fd: int) -> None:
        if self.armed:
            if self.calls == 0:
                self.entered.set()
                self.release.wait(10)
                raise OSError(errno.EIO, "injected EIO")
            self.calls -= 1
        super().fdatasync(fd)


async def _wait_for(event: threading.Event) -> None:
    deadline = time.monotonic() + 10
    while not event.is_set():
        assert time.monotonic() < deadline, "the writer never reached the failing sync"
        await asyncio.sleep(0.001)


@pytest.mark.parametrize("good_syncs", [0, 1, 5])
def test_fsync_eio_fails_the_append_the_queue_and_every_later_one(
    tmp_path: Path, good_syncs: int
) -> None:
    fs = FailingSync(good_syncs)
    entered, release = fs.entered, fs.release
    acked: dict[int, bytes] = {}
    submitted: dict[int, bytes] = {}

    async def main() -> None:
        log = EventLog.open(tmp_path, segment_bytes=4096, fs=fs)
        fs.armed = True
        try:
            for i in range(good_syncs):  # one sync per sequential append (and per rotation)
                payload = f"ok-{i}".encode() * 100
                seq = await log.append(payload)
                acked[seq] = payload
            in_flight = asyncio.ensure_future(log.append(b"in flight"))
            await _wait_for(entered)
            # The writer is stuck in the failing sync: these queue behind it.
            queued: list[asyncio.Future[object]] = [
                asyncio.ensure_future(log.append(f"queued-{i}".encode())) for i in range(5)
            ]
            queued.append(asyncio.ensure_future(log.append_many([b"g1", b"g2", b"g3"])))
            await asyncio.sleep(0.01)
            release.set()
            with pytest.raises(LogFailedError) as caught:
                await in_flight
            assert isinstance(caught.value.__cause__, OSError)
            assert caught.value.__cause__.errno == errno.EIO
            results = await asyncio.gather(*queued, return_exceptions=True)
            assert all(isinstance(r, LogFailedError) for r in results), results
            # Later appends fail at once, without waiting on a writer or touching the disk.
            sizes = {p.name: p.stat().st_size for p in segment_files(tmp_path)}
            for attempt in (log.append(b"later"), log.append_many([b"a", b"b"])):
                started = time.monotonic()
                with pytest.raises(LogFailedError):
                    await attempt
                assert time.monotonic() - started < 0.5
            assert {p.name: p.stat().st_size for p in segment_files(tmp_path)} == sizes
            assert log.last_seq == max(acked, default=0)
            submitted[max(acked, default=0) + 1] = b"in flight"
        finally:
            release.set()
            log.close()

    asyncio.run(main())
    with EventLog.open(tmp_path, segment_bytes=4096) as log:
        records = list(log.read())
        assert [r.seq for r in records] == list(range(1, log.last_seq + 1))
        for seq, payload in acked.items():
            assert records[seq - 1].payload == payload, f"acknowledged seq {seq} lost"
        # The failed batch may have reached the file; if it did, it is exactly what was sent,
        # and nothing queued behind it (never written) can be there.
        expected = {**acked, **submitted}
        for record in records:
            assert record.payload == expected[record.seq]
        assert log.last_seq in (len(acked), len(acked) + 1)


class HalfWriteThenEnospc(FileSystem):
    """Once armed, pwrite writes half of what it is given, then raises ENOSPC."""

    def __init__(self) -> None:
        self.armed = threading.Event()

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        if not self.armed.is_set():
            return super().pwrite(fd, data, offset)
        os.pwrite(fd, data[: len(data) // 2], offset)
        raise OSError(errno.ENOSPC, "injected ENOSPC")


def test_write_error_mid_batch_leaves_a_torn_tail_that_reopen_cuts(tmp_path: Path) -> None:
    """ENOSPC after half the bytes: the append fails, and reopen cuts the half-written batch."""
    fs = HalfWriteThenEnospc()

    async def main() -> list[int]:
        with EventLog.open(tmp_path, fs=fs) as log:
            seqs = [await log.append(b"durable %d" % i) for i in range(3)]
            fs.armed.set()
            with pytest.raises(LogFailedError, match="may or may not be on disk"):
                await log.append_many([b"x" * 1000, b"y" * 1000])
            with pytest.raises(LogFailedError):
                await log.append(b"after")
            assert [r.seq for r in log.read()] == seqs
            return seqs

    seqs = asyncio.run(main())
    with EventLog.open(tmp_path) as log:
        assert [r.payload for r in log.read()] == [b"durable %d" % i for i in range(3)]
        assert log.last_seq == seqs[-1]
        assert log.recovery.torn_bytes > 0
        assert log.recovery.broken_file is not None

        async def more() -> int:
            return await log.append(b"fresh")

        assert asyncio.run(more()) == seqs[-1] + 1
