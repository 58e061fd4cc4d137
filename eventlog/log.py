"""EventLog: an append-only, fsynced, checksummed, segmented record log with group commit.

Appends from any number of tasks are gathered by one writer thread into a single `pwrite` and a
single `fdatasync`; each caller's seq is returned only after the batch holding it is on disk.
While one batch syncs, the next one fills, so throughput grows with concurrency instead of
queueing behind the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

import msgspec

from eventlog import fsutil
from eventlog.atomic import atomic_write
from eventlog.checkpoint import Checkpoint, verify
from eventlog.errors import (
    CorruptLogError,
    LogClosedError,
    LogError,
    LogFailedError,
    RecordTooLargeError,
)
from eventlog.frame import (
    HEADER,
    HEADER_SIZE,
    MAX_PAYLOAD,
    FrameScan,
    Record,
    Stop,
    frame_parts,
)
from eventlog.lock import DirLock
from eventlog.segment import (
    SEGMENT_HEADER_SIZE,
    SegmentFile,
    check_header,
    create_segment,
    list_segments,
    remove_temp_segments,
)
from eventlog.tail import SETTLE_TRIES, Tail, in_flight, judge_stop, scan_tail

DEFAULT_SEGMENT_BYTES = 64 * 2**20
DEFAULT_BATCH_BYTES = 4 * 2**20
PREALLOCATE_STEP = 4 * 2**20
"""The newest segment is kept allocated (as zeros) this far ahead of its last record, so a
durable append changes no file size and fdatasync need not commit metadata."""


class Recovery(msgspec.Struct, frozen=True):
    """What opening the log found and did; surfaced in recovery metrics and `log stat`."""

    segments: int
    first_seq: int
    last_seq: int
    records: int
    bytes_cut: int = 0
    cut_reason: str | None = None
    broken_file: str | None = None
    temp_files_removed: int = 0
    scanned_from_seq: int = 1
    """Open verified the newest segment from this seq on (a checkpoint lets it skip the rest)."""


# One queued append: first seq, its payloads (one group), framed size, the waiter's future.
_Entry = tuple[int, Sequence[bytes], int, "asyncio.Future[int]"]


class EventLog:
    """The log of one directory. Use `EventLog.open` (writer) or `EventLog.open_readonly`."""

    def __init__(
        self,
        path: Path,
        segments: list[SegmentFile],
        tail: Tail | None,
        recovery: Recovery,
        *,
        lock: DirLock | None,
        segment_bytes: int,
        batch_bytes: int,
    ) -> None:
        self.path = path
        self._recovery = recovery
        self._deferred: tuple[list[SegmentFile], Checkpoint | None] | None = None
        self.segment_bytes = segment_bytes
        self._first_seq = segments[0].first_seq if segments else 1
        self._last_seq = recovery.last_seq
        self._checkpoint = tail.checkpoint if tail is not None else None
        self._active_segment = segments[-1].first_seq if segments else 1
        self._lock = lock
        self._batch_bytes = batch_bytes
        self._next_seq = recovery.last_seq + 1
        self._queue: deque[_Entry] = deque()
        self._seq_lock = threading.Lock()
        self._wake_read = self._wake_write = -1
        self._idle = False
        self._kick_scheduled = False
        self._closing = False
        self._failure: LogFailedError | None = None
        self._fd: int | None = None
        self._thread: threading.Thread | None = None
        if lock is not None:
            self._wake_read, self._wake_write = os.pipe()
            os.set_blocking(self._wake_write, False)  # a full pipe already means "wake up"
            active = segments[-1].path
            self._fd = os.open(active, os.O_WRONLY | os.O_CLOEXEC)
            self._segment_size = tail.good_end if tail is not None else SEGMENT_HEADER_SIZE
            self._allocated = 0
            self._preallocate_step = min(PREALLOCATE_STEP, segment_bytes)
            self._ensure_allocated(self._segment_size)
            self._thread = threading.Thread(target=self._run, name="eventlog-writer", daemon=True)
            self._thread.start()

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        durable_floor: int = 0,
        checkpoint: Checkpoint | None = None,
    ) -> EventLog:
        """Open for writing: create if new, take the lock, repair a torn tail.

        `durable_floor` is the highest seq known to be acknowledged: a repair that would cut
        below it is corruption, not a torn write. A `checkpoint` (from a snapshot) implies that
        floor and lets the tail scan start at it; one that does not match this log raises
        CheckpointMismatchError before anything is changed.
        """
        path = Path(path)
        fsutil.make_dirs(path)
        lock = DirLock(path)
        try:
            removed = remove_temp_segments(path)
            segments = list_segments(path)
            if not segments:
                create_segment(path, 1, min(PREALLOCATE_STEP, segment_bytes))
                segments = list_segments(path)
            _check_headers(segments)
            if checkpoint is not None:
                verify(path, segments, checkpoint)
            tail, scanned_from, torn = _scan_newest(segments, checkpoint, durable_floor)
            active = segments[-1].path
            bytes_cut, broken = (0, None) if tail.clean else _cut_tail(active, torn, tail)
            recovery = Recovery(
                segments=len(segments),
                first_seq=segments[0].first_seq,
                last_seq=tail.last_seq,
                records=tail.last_seq - segments[0].first_seq + 1,
                bytes_cut=bytes_cut,
                cut_reason=None if tail.clean else _cut_reason(tail),
                broken_file=str(broken) if broken else None,
                temp_files_removed=len(removed),
                scanned_from_seq=scanned_from,
            )
            return cls(
                path,
                segments,
                tail,
                recovery,
                lock=lock,
                segment_bytes=segment_bytes,
                batch_bytes=batch_bytes,
            )
        except BaseException:
            lock.release()
            raise

    @classmethod
    def open_readonly(cls, path: Path | str, *, checkpoint: Checkpoint | None = None) -> EventLog:
        """Open without the lock and without repairing: for tools, and to follow a live writer.

        A frame still being written at the end is "not yet there"; damage with valid frames
        after it is still reported as corruption. Headers and the checkpoint are checked now;
        the newest segment is scanned only when `last_seq`, `checkpoint` or `recovery` is first
        asked for, since a full read checks every frame anyway.
        """
        path = Path(path)
        if not path.is_dir():
            raise LogError(f"no log at {path}")
        segments = list_segments(path)
        if segments:
            _check_headers(segments)
            if checkpoint is not None:
                verify(path, segments, checkpoint)
        first_seq = segments[0].first_seq if segments else 1
        log = cls(
            path,
            segments,
            None,
            Recovery(segments=len(segments), first_seq=first_seq, last_seq=0, records=0),
            lock=None,
            segment_bytes=DEFAULT_SEGMENT_BYTES,
            batch_bytes=DEFAULT_BATCH_BYTES,
        )
        if segments:
            log._deferred = (segments, checkpoint)
        return log

    def _scan_deferred(self) -> None:
        if self._deferred is None:
            return
        segments, checkpoint = self._deferred
        self._deferred = None
        tail, scanned_from, _ = _scan_newest(segments, checkpoint, 0, live=True)
        self._last_seq = tail.last_seq
        self._checkpoint = tail.checkpoint
        self._recovery = Recovery(
            segments=len(segments),
            first_seq=self._first_seq,
            last_seq=tail.last_seq,
            records=max(0, tail.last_seq - self._first_seq + 1),
            scanned_from_seq=scanned_from,
        )

    @property
    def recovery(self) -> Recovery:
        """What open found and did: segments, records, bytes cut, the .broken file."""
        self._scan_deferred()
        return self._recovery

    @property
    def last_seq(self) -> int:
        """Seq of the newest durable record; 0 for an empty log."""
        self._scan_deferred()
        return self._last_seq

    @property
    def checkpoint(self) -> Checkpoint | None:
        """Where the newest durable record sits; stored in snapshots to skip the history."""
        self._scan_deferred()
        return self._checkpoint

    @property
    def first_seq(self) -> int:
        """Seq of the oldest record still in the log's segments."""
        return self._first_seq

    @property
    def readonly(self) -> bool:
        return self._lock is None

    async def append(self, payload: bytes) -> int:
        """Append one record; returns its seq once it is on disk."""
        return await self._submit((payload,), HEADER_SIZE + len(payload))

    async def append_many(self, payloads: Sequence[bytes]) -> list[int]:
        """Append records with consecutive seqs as one all-or-nothing group."""
        if not payloads:
            return []
        first = await self._submit(tuple(payloads), sum(HEADER_SIZE + len(p) for p in payloads))
        return list(range(first, first + len(payloads)))

    def _submit(self, payloads: Sequence[bytes], size: int) -> asyncio.Future[int]:
        if size > HEADER_SIZE + MAX_PAYLOAD:
            for payload in payloads:
                if len(payload) > MAX_PAYLOAD:
                    raise RecordTooLargeError(
                        f"record of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte limit"
                    )
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise LogError(
                "appends run on an asyncio event loop (anyio's asyncio backend)"
            ) from None
        future: asyncio.Future[int] = loop.create_future()
        self._refuse_if_unwritable()
        with self._seq_lock:
            seq = self._next_seq
            self._next_seq = seq + len(payloads)
            self._queue.append((seq, payloads, size, future))
        if self._idle and not self._kick_scheduled:
            self._kick_scheduled = True
            loop.call_soon(self._kick)
        if self._failure is not None or self._thread is None:
            self._fail_queued(self._failure or LogClosedError(f"log {self.path} is closed"))
        return future

    def _kick(self) -> None:
        """Wake an idle writer once per event-loop turn, after every ready task has appended.

        Waking it on the first append instead would make it fight the loop for the GIL while the
        rest of the burst is still being enqueued, and commit the burst in small pieces.
        """
        self._kick_scheduled = False
        if self._wake_write >= 0:
            with contextlib.suppress(BlockingIOError):
                os.write(self._wake_write, b"\0")

    def _refuse_if_unwritable(self) -> None:
        if self._failure is not None:
            raise LogFailedError(str(self._failure)) from self._failure.__cause__
        if self._lock is None:
            raise LogClosedError(f"log {self.path} is read-only")
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
                self._idle = True
                if not queue and not self._closing:
                    os.read(self._wake_read, 4096)
                self._idle = False
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
            self._last_seq = first + len(payloads) - 1
            _settle_threadsafe(batch, None)

    def _persist(self, batch: list[_Entry]) -> None:
        assert self._fd is not None
        parts: list[bytes] = []
        start = size = self._segment_size
        last_header = b""
        last_offset = 0
        for first, payloads, nbytes, _ in batch:
            if size + nbytes > self.segment_bytes and size > SEGMENT_HEADER_SIZE:
                if parts:
                    self._write_at(b"".join(parts), start)
                    parts = []
                self._rotate(first, size)
                start = size = SEGMENT_HEADER_SIZE
            last = len(payloads) - 1
            for index, payload in enumerate(payloads):
                last_header, body = frame_parts(first + index, payload, index < last)
                parts.append(last_header)
                parts.append(body)
            size += nbytes
            last_offset = size - HEADER_SIZE - len(payloads[last])
        self._write_at(b"".join(parts), start)
        fsutil.datasync(self._fd)
        self._segment_size = size
        _, crc, seq = HEADER.unpack(last_header)
        self._checkpoint = Checkpoint(self._active_segment, last_offset, seq, crc)

    def _write_at(self, data: bytes, offset: int) -> None:
        assert self._fd is not None
        self._ensure_allocated(offset + len(data))
        fsutil.write_all_at(self._fd, data, offset)

    def _ensure_allocated(self, end: int) -> None:
        """Keep allocated space a step ahead of `end`; the allocation itself is made durable."""
        assert self._fd is not None
        if end + HEADER_SIZE > self._allocated:
            steps = (end + HEADER_SIZE) // self._preallocate_step + 1
            fsutil.preallocate(self._fd, steps * self._preallocate_step)
            self._allocated = os.fstat(self._fd).st_size

    def _rotate(self, first_seq: int, used: int) -> None:
        """Seal the active segment and start the next; both durable before any new record.

        Sealing cuts the unused preallocated space, so only the newest segment ever ends in
        zeros and an older one that does not end exactly at a record is damaged.
        """
        assert self._fd is not None
        os.ftruncate(self._fd, used)
        fsutil.fullsync(self._fd)
        os.close(self._fd)
        self._fd = None
        new = create_segment(self.path, first_seq, self._preallocate_step)
        self._fd = os.open(new, os.O_WRONLY | os.O_CLOEXEC)
        self._allocated = os.fstat(self._fd).st_size
        self._active_segment = first_seq

    def _fail(self, exc: BaseException, batch: list[_Entry]) -> None:
        """A failed write or fsync poisons the log: the page cache can no longer be trusted."""
        failure = LogFailedError(f"log {self.path} failed and refuses writes: {exc!r}")
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

    def read(self, start: int = 1, *, checkpoint: Checkpoint | None = None) -> Iterator[Record]:
        """Records from `start` on, in seq order across segments, every CRC checked.

        A writer's reader stops at the last durable seq as of the call; a read-only reader goes
        to the current end of the files, treating a frame still being written as absent. With a
        `checkpoint` before `start`, reading begins at it rather than at its segment's start; a
        checkpoint that does not match raises CheckpointMismatchError here, before iterating.
        """
        segments = list_segments(self.path)
        if not segments:
            return iter(())
        if checkpoint is not None and checkpoint.seq < start:
            verify(self.path, segments, checkpoint)
            index = next(i for i, s in enumerate(segments) if s.first_seq == checkpoint.segment)
            return self._records(segments[index:], start, checkpoint.offset, checkpoint.seq)
        index = 0
        for position, segment in enumerate(segments):
            if segment.first_seq <= start:
                index = position
        first = segments[index].first_seq
        return self._records(segments[index:], start, SEGMENT_HEADER_SIZE, first)

    def _records(
        self, chosen: list[SegmentFile], start: int, offset: int, next_seq: int
    ) -> Iterator[Record]:
        limit = self._last_seq if self._lock is not None else None
        expected = chosen[0].first_seq
        for position, segment in enumerate(chosen):
            if segment.first_seq != expected:
                raise CorruptLogError(
                    segment.path,
                    0,
                    expected,
                    "gap between segments",
                    f"segment starts at seq {segment.first_seq}",
                )
            if position:
                offset, next_seq = SEGMENT_HEADER_SIZE, segment.first_seq
            data = segment.path.read_bytes()
            check_header(segment.path, data, segment.first_seq)
            scan = FrameScan(data, offset, next_seq)
            if limit is None and next_seq >= start:
                yield from scan
            else:
                for record in scan:
                    if limit is not None and record.seq > limit:
                        return
                    if record.seq >= start:
                        yield record
            if limit is not None and scan.good_seq >= limit:
                return  # every durable record is read; what follows is a write in flight
            expected = scan.good_seq + 1
            if scan.stop is Stop.END and scan.good_end == scan.stop_offset:
                continue
            newest = position == len(chosen) - 1
            if not newest or scan.stop is Stop.SEQ or limit is not None:
                raise CorruptLogError(segment.path, scan.stop_offset, scan.next_seq, _damage(scan))
            try:
                judge_stop(segment.path, data, scan)  # zeros or a torn end: not there yet
            except CorruptLogError as err:
                if in_flight(segment.path, err.offset, err.seq):
                    return  # the rest is being written: the next read gets it
                raise

    def close(self) -> None:
        """Drain queued appends, stop the writer, release the lock. Idempotent."""
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
            os.close(self._fd)
            self._fd = None
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _scan_newest(
    segments: list[SegmentFile],
    checkpoint: Checkpoint | None,
    durable_floor: int,
    live: bool = False,
) -> tuple[Tail, int, bytes]:
    """Find the newest segment's valid end, from a verified checkpoint on when there is one.

    Returns the tail, the seq the scan started at, and the bytes past the valid end. `live`:
    another process may be writing (a read-only open), see `tail.in_flight`.
    """
    active = segments[-1]
    start: tuple[int, int] | None = None
    if checkpoint is not None:
        durable_floor = max(durable_floor, checkpoint.seq)
        if checkpoint.segment == active.first_seq:
            start = (checkpoint.offset, checkpoint.seq)
    for attempt in range(SETTLE_TRIES + 1):
        data = active.path.read_bytes()
        try:
            tail = scan_tail(active.path, data, active.first_seq, durable_floor, start)
            break
        except CorruptLogError as err:
            # a reader may catch a live writer's write half done: wait it out, not for ever
            if (
                not live
                or attempt == SETTLE_TRIES
                or not in_flight(active.path, err.offset, err.seq)
            ):
                raise
    torn = data[tail.good_end :]
    if tail.checkpoint is None and checkpoint is not None and checkpoint.seq == tail.last_seq:
        tail = tail._replace(checkpoint=checkpoint)
    return tail, start[1] if start else active.first_seq, torn


def _check_headers(segments: list[SegmentFile]) -> None:
    for segment in segments:
        with segment.path.open("rb") as handle:
            check_header(segment.path, handle.read(SEGMENT_HEADER_SIZE), segment.first_seq)


def _damage(scan: FrameScan) -> str:
    return "unfinished group" if scan.stop is Stop.END else scan.stop.value


def _cut_reason(tail: Tail) -> str:
    if tail.stop is Stop.END:
        return "unfinished group at the end"
    return "zero fill" if tail.zero_fill else f"torn write ({tail.stop.value})"


def _cut_tail(path: Path, removed: bytes, tail: Tail) -> tuple[int, Path | None]:
    """Truncate a torn tail, keeping any non-zero bytes in `<segment>.broken`."""
    broken: Path | None = None
    if removed.strip(b"\0"):
        broken = path.with_name(path.name + ".broken")
        suffix = 1
        while broken.exists():
            broken = path.with_name(f"{path.name}.broken.{suffix}")
            suffix += 1
        atomic_write(broken, removed)
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, tail.good_end)
        fsutil.fullsync(fd)
    finally:
        os.close(fd)
    return len(removed), broken


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
