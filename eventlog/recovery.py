"""Opening a log: make what is on disk durable, then judge where it ends, by rule.

Open makes the newest segment and the directory durable before judging them (a writer that died
may have left bytes only in the page cache), checks every segment header and a snapshot's
checkpoint, then applies the rule of `tail.py` to the newest segment: a torn last write is cut
into `<segment>.broken`, corruption is refused. A read-only open defers the judgement until its
end is first asked for. What opening found and did is a `Recovery`.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import NamedTuple

import msgspec

from eventlog import fsutil
from eventlog.atomic import atomic_write
from eventlog.checkpoint import Checkpoint, verify
from eventlog.errors import LogError
from eventlog.frame import COMMIT_SIZE, commit_at
from eventlog.lock import DirLock
from eventlog.segment import (
    SEGMENT_HEADER_SIZE,
    SegmentFile,
    create_segment,
    list_segments,
    read_header,
    remove_temp_files,
)
from eventlog.tail import Tail, scan_tail, settle
from eventlog.vfs import FileSystem
from eventlog.writer import PREALLOCATE_STEP


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


class Recovered(NamedTuple):
    """A log opened for writing, its tail judged and repaired: ready for a writer.

    The lock and the newest segment's descriptor are the caller's from here on.
    """

    segments: list[SegmentFile]
    tail: Tail
    recovery: Recovery
    lock: DirLock
    fd: int

    def abandon(self, fs: FileSystem) -> None:
        """Close the descriptor and release the lock: starting the writer failed."""
        fs.close(self.fd)
        self.lock.release()


def recover(
    path: Path,
    segment_bytes: int,
    durable_floor: int,
    checkpoint: Checkpoint | None,
    fs: FileSystem,
) -> Recovered:
    """Create if new, take the lock, make the newest segment durable, then cut a torn last
    write or refuse corruption. On any error, nothing stays locked or open."""
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
        return Recovered(segments, tail, recovery, lock, fd)
    except BaseException:
        if fd is not None:
            fs.close(fd)
        lock.release()
        raise


def check_readonly(path: Path, checkpoint: Checkpoint | None, fs: FileSystem) -> list[SegmentFile]:
    """What a read-only open checks at once: the directory, every header, the checkpoint.
    Returns the segments in seq order."""
    if not fs.is_dir(path):
        raise LogError(f"no log at {path}")
    segments = list_segments(path, fs)
    if segments:
        _check_headers(segments, fs)
        if checkpoint is not None:
            verify(path, segments, checkpoint, fs)
    return segments


def judge_readonly(
    fs: FileSystem, path: Path, segments: list[SegmentFile], checkpoint: Checkpoint | None
) -> tuple[Tail, int]:
    """A read-only open's deferred judgement of the newest segment, made durable first; another
    process may be writing it. Returns the tail and the seq the judgement started from."""
    _sync_readonly(fs, path, segments[-1].path)
    tail, scanned_from, _ = _scan_newest(fs, segments, checkpoint, 0, live=True)
    return tail, scanned_from


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
