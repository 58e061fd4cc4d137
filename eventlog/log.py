"""EventLog: an append-only, fsynced, checksummed, segmented record log with group commit.

The public face of the engine, one class over three parts that each have one job, split the
way raft-wal and etcd's wal split theirs:

- `recovery.py` opens a log: makes what is on disk durable, cuts a torn last write into
  `<segment>.broken` or refuses corruption, and reports what it found (`Recovery`);
- `writer.py` appends: group commit, one `pwrite` and one `fdatasync` per batch, rotation,
  and the failed state after a write or fsync error;
- `reader.py` reads: records in seq order across segments, following the chain by name.

This module only wires them together: which parts a writable or a read-only log has, and what
each question (`last_seq`, `checkpoint`, `recovery`) asks of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

from eventlog.checkpoint import Checkpoint
from eventlog.errors import LogClosedError, LogError, RecordTooLargeError
from eventlog.frame import HEADER_SIZE, MAX_PAYLOAD, Record
from eventlog.latency import SYNC_BUCKETS, LatencyHistogram
from eventlog.lock import DirLock
from eventlog.reader import read_records
from eventlog.recovery import Recovery, check_readonly, judge_readonly, recover
from eventlog.segment import SegmentFile
from eventlog.vfs import REAL, FileSystem
from eventlog.writer import PREALLOCATE_STEP, Writer

__all__ = [
    "DEFAULT_BATCH_BYTES",
    "DEFAULT_SEGMENT_BYTES",
    "PREALLOCATE_STEP",
    "EventLog",
    "Recovery",
]

DEFAULT_SEGMENT_BYTES = 64 * 2**20
DEFAULT_BATCH_BYTES = 4 * 2**20


class EventLog:
    """The log of one directory. Use `EventLog.open` (writer) or `EventLog.open_readonly`."""

    def __init__(
        self,
        path: Path,
        fs: FileSystem,
        segments: list[SegmentFile],
        recovery: Recovery,
        *,
        lock: DirLock | None,
        writer: Writer | None,
        segment_bytes: int,
    ) -> None:
        self.path = path
        self._fs = fs
        self._recovery = recovery
        self._deferred: tuple[list[SegmentFile], Checkpoint | None] | None = None
        self.segment_bytes = segment_bytes
        self._first_seq = segments[0].first_seq if segments else 1
        self._last_seq = recovery.last_seq
        """A read-only log's end, once judged; a writable one asks its writer."""
        self._checkpoint: Checkpoint | None = None
        self._lock = lock
        self._writer = writer
        self.sync_latency = writer.sync_latency if writer else LatencyHistogram(SYNC_BUCKETS)
        """The writer's fdatasync latencies (see `Writer.sync_latency`); empty when read-only."""

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
        recovered = recover(path, segment_bytes, durable_floor, checkpoint, fs)
        tail = recovered.tail
        try:
            writer = Writer(
                path,
                fs,
                recovered.fd,
                active_segment=recovered.segments[-1].first_seq,
                segment_size=tail.good_end,
                last_seq=tail.last_seq,
                checkpoint=tail.checkpoint,
                segment_bytes=segment_bytes,
                batch_bytes=batch_bytes,
            )
        except BaseException:
            recovered.abandon(fs)
            raise
        return cls(
            path,
            fs,
            recovered.segments,
            recovered.recovery,
            lock=recovered.lock,
            writer=writer,
            segment_bytes=segment_bytes,
        )

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
        segments = check_readonly(path, checkpoint, fs)
        first_seq = segments[0].first_seq if segments else 1
        log = cls(
            path,
            fs,
            segments,
            Recovery(segments=len(segments), first_seq=first_seq, last_seq=0, records=0),
            lock=None,
            writer=None,
            segment_bytes=DEFAULT_SEGMENT_BYTES,
        )
        if segments:
            log._deferred = (segments, checkpoint)
        return log

    def _scan_deferred(self) -> None:
        if self._deferred is None:
            return
        segments, checkpoint = self._deferred
        self._deferred = None
        tail, scanned_from = judge_readonly(self._fs, self.path, segments, checkpoint)
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
        return self._writer.last_seq if self._writer is not None else self._last_seq

    @property
    def checkpoint(self) -> Checkpoint | None:
        """Where the newest durable batch ends; stored in snapshots to skip the history."""
        self._scan_deferred()
        return self._writer.checkpoint if self._writer is not None else self._checkpoint

    @property
    def first_seq(self) -> int:
        """Seq of the oldest record still in the log's segments."""
        return self._first_seq

    @property
    def readonly(self) -> bool:
        return self._lock is None

    @property
    def _idle(self) -> bool:
        """The writer thread is parked, so the next append must wake it (what tests wait for)."""
        return self._writer is not None and self._writer.idle

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
        if self._writer is None:
            raise LogClosedError(f"log {self.path} is read-only")
        return self._writer.submit(loop, payloads, size)

    def read(self, start: int = 1, *, checkpoint: Checkpoint | None = None) -> Iterator[Record]:
        """Records from `start` on, in seq order across segments, every CRC checked.

        A writer's reader stops at the last durable seq as of the call; a read-only reader goes
        to the end of the last complete batch on disk. With a `checkpoint` before `start`,
        reading begins right after it rather than at its segment's start; a checkpoint that
        does not match raises CheckpointMismatchError here, before iterating.
        """
        writer = self._writer
        durable_end = None if writer is None else lambda: writer.last_seq
        return read_records(self._fs, self.path, start, checkpoint, durable_end)

    def close(self) -> None:
        """Drain queued appends, stop the writer, release the lock. Idempotent."""
        if self._writer is not None:
            self._writer.close()
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
