"""The writer of an open log: group commit, one `pwrite` and one `fdatasync` per batch.

Appends from any number of tasks are gathered by one writer thread into a single `pwrite` and a
single `fdatasync`; each caller's seq is returned only after the batch holding it is on disk.
While one batch syncs, the next one fills, so throughput grows with concurrency instead of
queueing behind the disk. Each batch ends with a commit frame (see `frame.py`), which is what
lets open tell a torn last write from damage to acknowledged records, by rule.

This module owns everything that changes the newest segment while the log is open: the queue,
the thread, preallocation, rotation, and the failed state a write or fsync error leaves. It
starts from what opening the log (`recovery.py`) judged durable and never reads a record back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from eventlog import fsutil
from eventlog.checkpoint import Checkpoint
from eventlog.errors import LogClosedError, LogError, LogFailedError
from eventlog.frame import COMMIT_SIZE, HEADER_SIZE, commit_frame, frame_parts
from eventlog.latency import SYNC_BUCKETS, LatencyHistogram
from eventlog.segment import SEGMENT_HEADER_SIZE, create_segment
from eventlog.vfs import FileSystem

PREALLOCATE_STEP = 4 * 2**20
"""The newest segment is kept allocated (as zeros) this far ahead of its last record, so a
durable append changes no file size and fdatasync need not commit metadata."""


# One queued append: first seq, its payloads (one group), framed size, the waiter's future.
_Entry = tuple[int, Sequence[bytes], int, "asyncio.Future[int]"]


class Writer:
    """The one writer of a log opened for writing: owns the newest segment's descriptor.

    `last_seq` and `checkpoint` are those of the newest durable batch; only the writer thread
    advances them, after the batch's fdatasync returned.
    """

    def __init__(
        self,
        path: Path,
        fs: FileSystem,
        fd: int,
        *,
        active_segment: int,
        segment_size: int,
        last_seq: int,
        checkpoint: Checkpoint | None,
        segment_bytes: int,
        batch_bytes: int,
    ) -> None:
        self.path = path
        self._fs = fs
        self.segment_bytes = segment_bytes
        self.last_seq = last_seq
        self.checkpoint = checkpoint
        self._active_segment = active_segment
        self._batch_bytes = batch_bytes
        self._next_seq = last_seq + 1
        self._queue: deque[_Entry] = deque()
        self._seq_lock = threading.Lock()
        self.idle = False
        """The thread is parked waiting for a wake-up byte (set just after it settles a batch)."""
        self._kicks: set[asyncio.AbstractEventLoop] = set()
        self._closing = False
        self._failure: LogFailedError | None = None
        self.sync_latency = LatencyHistogram(SYNC_BUCKETS)
        """How long each batch's fdatasync took: the disk's side of every durable append."""
        self._fd: int | None = fd
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)  # a full pipe already means "wake up"
        self._segment_size = segment_size
        self._allocated = fs.size(fd)
        self._preallocate_step = min(PREALLOCATE_STEP, segment_bytes)
        self._ensure_allocated(self._segment_size)
        self._thread: threading.Thread | None = threading.Thread(
            target=self._run, name="eventlog-writer", daemon=True
        )
        self._thread.start()

    def submit(
        self, loop: asyncio.AbstractEventLoop, payloads: Sequence[bytes], size: int
    ) -> asyncio.Future[int]:
        """Queue one group (`size` framed bytes) and assign its seqs now, in call order; the
        future, of `loop`, gives its first seq once the batch holding it is durable."""
        future: asyncio.Future[int] = loop.create_future()
        self._refuse_if_unwritable()
        with self._seq_lock:
            seq = self._next_seq
            self._next_seq = seq + len(payloads)
            self._queue.append((seq, payloads, size, future))
        if self.idle and loop not in self._kicks:
            self._kicks.add(loop)
            loop.call_soon(self._kick, loop)
        if self._failure is not None or self._thread is None:
            self._fail_queued(self._failure or LogClosedError(f"log {self.path} is closed"))
        return future

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wake an idle writer once per event-loop turn, after every ready task has appended.

        Waking it on the first append instead would make it fight the loop for the GIL while the
        rest of the burst is still being enqueued, and commit the burst in small pieces. The
        wake-up is scheduled per loop: a loop that is blocked never holds up another's appends.
        """
        self._kicks.discard(loop)
        if self._wake_write >= 0:
            with contextlib.suppress(BlockingIOError):
                os.write(self._wake_write, b"\0")

    def _refuse_if_unwritable(self) -> None:
        if self._failure is not None:
            raise LogFailedError(str(self._failure)) from self._failure.__cause__
        if self._closing:
            raise LogClosedError(f"log {self.path} is closed")

    def _run(self) -> None:
        """Writer thread: take what has gathered, make it durable, wake the waiters.

        The hot path takes no lock shared with the event loop: deque append/popleft are atomic,
        and the loop only writes a wake-up byte when the writer has announced it is idle. The
        writer re-checks the queue after announcing, so a wake-up is never lost; a stale byte
        costs one spurious turn. A pipe, because a thread blocked in read() wakes about three
        times faster here than one parked on a threading.Event.
        """
        queue = self._queue
        while True:
            if not queue:
                self.idle = True
                if not queue and not self._closing:
                    os.read(self._wake_read, 4096)
                self.idle = False
                if not queue:
                    if self._closing:
                        return
                    continue
            batch = [queue.popleft()]
            total = batch[0][2]
            while queue and total + queue[0][2] <= self._batch_bytes:
                entry = queue.popleft()
                batch.append(entry)
                total += entry[2]
            try:
                self._persist(batch)
            except BaseException as exc:
                self._fail(exc, batch)
                return
            first, payloads, _, _ = batch[-1]
            self.last_seq = first + len(payloads) - 1
            _settle_threadsafe(batch, None)

    def _persist(self, batch: list[_Entry]) -> None:
        """One write and one fdatasync for the whole batch, closed by a commit frame; at a
        rotation, the part in the old segment gets its own commit frame and is synced with it."""
        assert self._fd is not None
        parts: list[bytes] = []
        start = size = self._segment_size
        last_seq = 0
        for first, payloads, nbytes, _ in batch:
            if size + nbytes + COMMIT_SIZE > self.segment_bytes and size > SEGMENT_HEADER_SIZE:
                if parts:
                    size += self._write_batch(parts, start, last_seq)[0]
                    parts = []
                self._rotate(first, size)
                start = size = SEGMENT_HEADER_SIZE
            for index, payload in enumerate(payloads):
                parts.extend(frame_parts(first + index, payload))
            size += nbytes
            last_seq = first + len(payloads) - 1
        written, crc = self._write_batch(parts, start, last_seq)
        synced = time.perf_counter()
        self._fs.fdatasync(self._fd)
        self.sync_latency.observe(time.perf_counter() - synced)
        self._segment_size = size + written
        self.checkpoint = Checkpoint(self._active_segment, size, last_seq, crc)

    def _write_batch(self, parts: list[bytes], start: int, last_seq: int) -> tuple[int, int]:
        """Write the frames and their commit frame at `start`; returns the commit's size & CRC
        (the frames' size the caller has counted)."""
        assert self._fd is not None
        data = b"".join(parts)
        commit, crc = commit_frame(last_seq, start, data)
        blob = data + commit
        self._ensure_allocated(start + len(blob))
        fsutil.write_all_at(self._fs, self._fd, blob, start)
        return COMMIT_SIZE, crc

    def _ensure_allocated(self, end: int) -> None:
        """Keep allocated space a step ahead of `end`; the allocation itself is made durable."""
        assert self._fd is not None
        if end + HEADER_SIZE > self._allocated:
            steps = (end + HEADER_SIZE) // self._preallocate_step + 1
            fsutil.preallocate(self._fs, self._fd, steps * self._preallocate_step)
            self._allocated = self._fs.size(self._fd)

    def _rotate(self, first_seq: int, used: int) -> None:
        """Seal the active segment and start the next; both durable before any new record.

        Sealing cuts the unused preallocated space, so only the newest segment ever ends in
        zeros and an older one that does not end exactly at a commit frame is damaged.
        """
        assert self._fd is not None
        fs = self._fs
        fs.truncate(self._fd, used)
        fs.fsync(self._fd)
        fs.close(self._fd)
        self._fd = None
        new = create_segment(self.path, first_seq, self._preallocate_step, fs)
        self._fd = fs.open(new, os.O_RDWR)
        self._allocated = fs.size(self._fd)
        self._active_segment = first_seq

    def _fail(self, exc: BaseException, batch: list[_Entry]) -> None:
        """A failed write or fsync poisons the log: the page cache can no longer be trusted."""
        failure = LogFailedError(
            f"log {self.path} failed and refuses writes (the failed appends may or may not "
            f"be on disk): {exc!r}"
        )
        failure.__cause__ = exc
        self._failure = failure
        _settle_threadsafe(batch, failure)
        self._fail_queued(failure)

    def _fail_queued(self, error: LogError) -> None:
        """Fail every append still queued; used once no writer thread will take them."""
        stranded: list[_Entry] = []
        while self._queue:
            try:
                stranded.append(self._queue.popleft())
            except IndexError:
                break
        if stranded:
            _settle_threadsafe(stranded, error)

    def close(self) -> None:
        """Drain queued appends, stop the thread, close the segment. Idempotent."""
        self._closing = True
        if self._thread is not None:
            os.write(self._wake_write, b"\0")
            self._thread.join()
            self._thread = None
            self._fail_queued(LogClosedError(f"log {self.path} is closed"))
        if self._wake_read >= 0:
            os.close(self._wake_read)
            os.close(self._wake_write)
            self._wake_read = self._wake_write = -1
        if self._fd is not None:
            self._fs.close(self._fd)
            self._fd = None


def _settle_threadsafe(batch: list[_Entry], error: BaseException | None) -> None:
    """Wake each waiter on its own event loop; a loop that is gone has nobody waiting."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], int]]] = {}
    for first, _, _, future in batch:
        by_loop.setdefault(future.get_loop(), []).append((future, first))
    for loop, waiters in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, waiters, error)
        except RuntimeError:
            continue


def _settle(waiters: list[tuple[asyncio.Future[int], int]], error: BaseException | None) -> None:
    for future, seq in waiters:
        if future.done():
            continue
        if error is None:
            future.set_result(seq)
        else:
            future.set_exception(error)
