"""EventLog: an append-only, fsynced, checksummed, segmented record log with group commit.

Appends from any number of tasks are gathered by one writer thread into a single `pwrite` and a
single `fdatasync`; each caller's seq is returned only after the batch holding it is on disk.
While one batch syncs, the next one fills, so throughput grows with concurrency instead of
queueing behind the disk. Each batch ends with a commit frame (see `frame.py`), which is what
lets open tell a torn last write from damage to acknowledged records, by rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import threading
import time
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
    COMMIT_SIZE,
    HEADER_SIZE,
    MAX_PAYLOAD,
    FrameScan,
    Record,
    Stop,
    commit_at,
    commit_frame,
    frame_parts,
)
from eventlog.latency import SYNC_BUCKETS, LatencyHistogram
from eventlog.lock import DirLock
from eventlog.segment import (
    SEGMENT_HEADER_SIZE,
    SegmentFile,
    check_header,
    create_segment,
    list_segments,
    read_header,
    remove_temp_files,
    segment_name,
)
from eventlog.tail import SETTLE_PAUSE, SETTLE_TRIES, Tail, judge, scan_tail, settle
from eventlog.vfs import REAL, FileSystem

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
    torn_bytes: int = 0
    """Non-zero bytes of a torn last write that open cut (kept in `broken_file`)."""
    zero_fill_bytes: int = 0
    """Zeros after those torn bytes, dropped by the same cut: free space, not damage."""
    cut_reason: str | None = None
    broken_file: str | None = None
    temp_files_removed: int = 0
    scanned_from_seq: int = 1
    """Open judged the newest segment from this seq on (a checkpoint lets it skip the rest)."""


# One queued append: first seq, its payloads (one group), framed size, the waiter's future.
_Entry = tuple[int, Sequence[bytes], int, "asyncio.Future[int]"]


class EventLog:
    """The log of one directory. Use `EventLog.open` (writer) or `EventLog.open_readonly`."""

    def __init__(
        self,
        path: Path,
        fs: FileSystem,
        segments: list[SegmentFile],
        tail: Tail | None,
        recovery: Recovery,
        *,
        lock: DirLock | None,
        fd: int | None,
        segment_bytes: int,
        batch_bytes: int,
    ) -> None:
        self.path = path
        self._fs = fs
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
        self._kicks: set[asyncio.AbstractEventLoop] = set()
        self._closing = False
        self._failure: LogFailedError | None = None
        self.sync_latency = LatencyHistogram(SYNC_BUCKETS)
        """How long each batch's fdatasync took: the disk's side of every durable append."""
        self._fd = fd
        self._thread: threading.Thread | None = None
        if fd is not None:
            self._wake_read, self._wake_write = os.pipe()
            os.set_blocking(self._wake_write, False)  # a full pipe already means "wake up"
            self._segment_size = tail.good_end if tail is not None else SEGMENT_HEADER_SIZE
            self._allocated = fs.size(fd)
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
        fs: FileSystem = REAL,
    ) -> EventLog:
        """Open for writing: create if new, take the lock, make the newest segment durable,
        then cut a torn last write or refuse corruption (DESIGN.md, "The log").

        `durable_floor` is the highest seq known to be acknowledged: a log that would end below
        it is corrupt, whatever its bytes say. A `checkpoint` (from a snapshot) implies that
        floor and lets the tail scan start at it; one that does not match this log raises
        CheckpointMismatchError before anything is changed.
        """
        path = Path(path)
        fsutil.make_dirs(path, fs)
        lock = DirLock(path, fs)
        fd: int | None = None
        try:
            removed = remove_temp_files(path, fs)
            segments = list_segments(path, fs)
            if not segments:
                create_segment(path, 1, min(PREALLOCATE_STEP, segment_bytes), fs)
                segments = list_segments(path, fs)
            # A writer that died may have left names and bytes that are only in the page cache:
            # make them durable before judging them, and before exposing anything built on them.
            fs.fsync_dir(path)
            _check_headers(segments, fs)
            if checkpoint is not None:
                verify(path, segments, checkpoint, fs)
            newest = segments[-1]
            fd = fs.open(newest.path, os.O_RDWR)
            fs.fsync(fd)
            tail, scanned_from, data = _scan_newest(fs, segments, checkpoint, durable_floor)
            broken = None if tail.clean else _cut_tail(fs, fd, newest.path, data, tail)
            recovery = Recovery(
                segments=len(segments),
                first_seq=segments[0].first_seq,
                last_seq=tail.last_seq,
                records=tail.last_seq - segments[0].first_seq + 1,
                torn_bytes=tail.torn_bytes,
                zero_fill_bytes=tail.zero_fill_bytes,
                cut_reason=None if tail.clean else f"torn write ({tail.kind})",
                broken_file=str(broken) if broken else None,
                temp_files_removed=len(removed),
                scanned_from_seq=scanned_from,
            )
            return cls(
                path,
                fs,
                segments,
                tail,
                recovery,
                lock=lock,
                fd=fd,
                segment_bytes=segment_bytes,
                batch_bytes=batch_bytes,
            )
        except BaseException:
            if fd is not None:
                fs.close(fd)
            lock.release()
            raise

    @classmethod
    def open_readonly(
        cls, path: Path | str, *, checkpoint: Checkpoint | None = None, fs: FileSystem = REAL
    ) -> EventLog:
        """Open without the lock and without repairing: for tools, and to follow a live writer.

        Readers see complete batches only: a write still in progress is "not yet there". Headers
        and the checkpoint are checked now; the newest segment is made durable and judged when
        `last_seq`, `checkpoint` or `recovery` is first asked for (a full read checks every frame
        anyway), so what they expose never rests on bytes a power cut could still take back.
        """
        path = Path(path)
        if not fs.is_dir(path):
            raise LogError(f"no log at {path}")
        segments = list_segments(path, fs)
        if segments:
            _check_headers(segments, fs)
            if checkpoint is not None:
                verify(path, segments, checkpoint, fs)
        first_seq = segments[0].first_seq if segments else 1
        log = cls(
            path,
            fs,
            segments,
            None,
            Recovery(segments=len(segments), first_seq=first_seq, last_seq=0, records=0),
            lock=None,
            fd=None,
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
        _sync_readonly(self._fs, self.path, segments[-1].path)
        tail, scanned_from, _ = _scan_newest(self._fs, segments, checkpoint, 0, live=True)
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
        """Where the newest durable batch ends; stored in snapshots to skip the history."""
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
        """Append one record; returns its seq once it is on disk.

        LogFailedError means the outcome is unknown (see its docstring).
        """
        return await self._submit((payload,), HEADER_SIZE + len(payload))

    async def append_many(self, payloads: Sequence[bytes]) -> list[int]:
        """Append records with consecutive seqs as one all-or-nothing group."""
        if not payloads:
            return []
        first = await self.submit_many(payloads)
        return list(range(first, first + len(payloads)))

    def submit_many(self, payloads: Sequence[bytes]) -> asyncio.Future[int]:
        """Queue one all-or-nothing group now; the future gives its first seq once durable.

        Seqs are assigned in call order, synchronously: for a caller that must fix the order
        of its groups without awaiting (a single writer that applies each group to its state
        before deciding the next). ``append_many`` is this plus the wait.
        """
        return self._submit(tuple(payloads), sum(HEADER_SIZE + len(p) for p in payloads))

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
        if self._idle and loop not in self._kicks:
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
        self._checkpoint = Checkpoint(self._active_segment, size, last_seq, crc)

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

    def read(self, start: int = 1, *, checkpoint: Checkpoint | None = None) -> Iterator[Record]:
        """Records from `start` on, in seq order across segments, every CRC checked.

        A writer's reader stops at the last durable seq as of the call; a read-only reader goes
        to the end of the last complete batch on disk. With a `checkpoint` before `start`,
        reading begins right after it rather than at its segment's start; a checkpoint that
        does not match raises CheckpointMismatchError here, before iterating.
        """
        segments = list_segments(self.path, self._fs)
        if not segments:
            return iter(())
        if checkpoint is not None and checkpoint.seq < start:
            end = verify(self.path, segments, checkpoint, self._fs)
            return self._records(checkpoint.segment, end, checkpoint.seq + 1, start)
        chosen = segments[0]
        for segment in segments:
            if segment.first_seq <= start:
                chosen = segment
        return self._records(chosen.first_seq, SEGMENT_HEADER_SIZE, chosen.first_seq, start)

    def _records(self, current: int, offset: int, next_seq: int, start: int) -> Iterator[Record]:
        """Walk the segment chain by name from `current`: after a segment whose last batch ends
        at seq N comes `<N+1>.seg`. A directory listing taken while the writer rotates can miss
        a segment; a name looked up when it is needed cannot.

        What cannot be decided from one read (a segment read just before the writer sealed it,
        a write in flight at the newest segment's end) is read again, a few times, from the last
        complete batch: a live writer settles within a few pauses, real damage stays.
        """
        limit = self._last_seq if self._lock is not None else None
        fs = self._fs
        retries = 0
        while True:
            path = self.path / segment_name(current)
            data = fs.read_file(path)
            check_header(path, data, current)
            scan = FrameScan(data, offset, next_seq)
            for record in scan:
                if limit is not None and record.seq > limit:
                    return
                if record.seq >= start:
                    yield record
            if limit is not None and scan.good_seq >= limit:
                return  # every durable record is read; what follows is a write in flight
            offset, next_seq = scan.good_end, scan.good_seq + 1
            successor = self.path / segment_name(next_seq)
            if scan.clean and next_seq != current and fs.exists(successor):
                current, offset, retries = next_seq, SEGMENT_HEADER_SIZE, 0
                continue
            later = _later_segment(fs, self.path, current)
            newest = later is None
            try:
                if not newest or limit is not None:
                    # a segment before the newest ends at a commit frame and the file's end,
                    # and the next one is named after the seq that follows
                    raise _chain_damage(path, scan, later, next_seq)
                if not scan.clean:
                    judge(path, data, scan, current)  # zeros or a torn end: not there yet
                return
            except CorruptLogError:
                retries += 1
                if limit is not None or retries > SETTLE_TRIES:
                    raise
                time.sleep(SETTLE_PAUSE)

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
            self._fs.close(self._fd)
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
    fs: FileSystem,
    segments: list[SegmentFile],
    checkpoint: Checkpoint | None,
    durable_floor: int,
    live: bool = False,
) -> tuple[Tail, int, bytes]:
    """Judge the newest segment, from just past a verified checkpoint when there is one.

    Returns the tail, the seq the judgement started from, and the segment's bytes. `live`:
    another process may be writing (a read-only open), see `tail.settle`.
    """
    newest = segments[-1]
    start: tuple[int, int] | None = None
    if checkpoint is not None:
        durable_floor = max(durable_floor, checkpoint.seq)
        if checkpoint.segment == newest.first_seq:
            start = (checkpoint.end, checkpoint.seq + 1)

    def attempt() -> tuple[Tail, bytes]:
        data = fs.read_file(newest.path)
        return scan_tail(newest.path, data, newest.first_seq, durable_floor, start), data

    tail, data = settle(attempt) if live else attempt()
    if tail.checkpoint is None:
        if checkpoint is not None and checkpoint.seq == tail.last_seq:
            tail = tail._replace(checkpoint=checkpoint)
        elif len(segments) > 1:
            tail = tail._replace(checkpoint=_sealed_end(fs, segments[-2], newest.first_seq - 1))
    return tail, start[1] - 1 if start else newest.first_seq, data


def _sealed_end(fs: FileSystem, segment: SegmentFile, seq: int) -> Checkpoint | None:
    """The checkpoint of a sealed segment's last batch (its commit frame ends the file), so a
    log whose newest segment holds no record yet still has one."""
    fd = fs.open(segment.path, os.O_RDONLY)
    try:
        offset = fs.size(fd) - COMMIT_SIZE
        blob = fs.pread(fd, COMMIT_SIZE, offset) if offset >= SEGMENT_HEADER_SIZE else b""
    finally:
        fs.close(fd)
    commit = commit_at(blob, 0)
    if commit is None or commit.seq != seq:
        return None  # damaged: whatever reads that segment will say so
    return Checkpoint(segment.first_seq, offset, seq, commit.crc)


def _later_segment(fs: FileSystem, log_dir: Path, current: int) -> SegmentFile | None:
    return next((s for s in list_segments(log_dir, fs) if s.first_seq > current), None)


def _chain_damage(
    path: Path, scan: FrameScan, later: SegmentFile | None, next_seq: int
) -> CorruptLogError:
    if not scan.clean:
        kind = "unfinished batch" if scan.stop is Stop.END else scan.stop.value
        return CorruptLogError(
            path, scan.stop_offset, scan.next_seq, kind, "damage before the log's durable end"
        )
    assert later is not None
    return CorruptLogError(
        path.with_name(segment_name(next_seq)),
        0,
        next_seq,
        "gap between segments",
        f"no segment starts at seq {next_seq}; the next one starts at {later.first_seq}",
    )


def _check_headers(segments: list[SegmentFile], fs: FileSystem) -> None:
    for segment in segments:
        read_header(segment.path, segment.first_seq, fs)


def _sync_readonly(fs: FileSystem, log_dir: Path, newest: Path) -> None:
    """Make the newest segment and the directory's names durable before a read-only open
    exposes an end or a checkpoint (a tool may store it in a snapshot). A read-only
    filesystem has nothing unsynced."""
    fd = fs.open(newest, os.O_RDONLY)
    try:
        fs.fsync(fd)
        fs.fsync_dir(log_dir)
    except OSError as err:
        if err.errno != errno.EROFS:
            raise
    finally:
        fs.close(fd)


def _cut_tail(fs: FileSystem, fd: int, path: Path, data: bytes, tail: Tail) -> Path | None:
    """Truncate a torn last write, keeping its non-zero bytes in `<segment>.broken`."""
    broken: Path | None = None
    if tail.torn_bytes:
        broken = path.with_name(path.name + ".broken")
        suffix = 1
        while fs.exists(broken):
            broken = path.with_name(f"{path.name}.broken.{suffix}")
            suffix += 1
        atomic_write(broken, data[tail.good_end : tail.data_end], fs)
    fs.truncate(fd, tail.good_end)
    fs.fsync(fd)
    return broken


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
