"""The operator's explicit repairs: cut a corrupt log after SEQ, or accept a loss of records.

Nothing is deleted: removed tail bytes, whole later segments and the snapshots of the removed
history move into a `repair-<time>` directory beside the segments (made only when something
moves). Preallocated zeros are free space and are not copied. Both refuse while a server holds
the log.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import msgspec

from eventlog import fsutil
from eventlog.atomic import atomic_write
from eventlog.errors import CorruptLogError, LogError
from eventlog.frame import FrameScan, Stop, data_end
from eventlog.lock import DirLock
from eventlog.log import EventLog
from eventlog.segment import (
    SEGMENT_HEADER_SIZE,
    SegmentFile,
    check_header,
    encode_header,
    list_segments,
)
from eventlog.snapshot import SnapshotStore
from eventlog.vfs import DIR_MODE, REAL, FileSystem


class RepairReport(msgspec.Struct, frozen=True):
    kept_last_seq: int
    bytes_removed: int
    """Bytes moved into the backup: the cut segment's tail and whole later segments."""
    zero_fill_dropped: int
    """Preallocated zeros cut without a copy (free space, not records)."""
    segments_moved: int
    snapshots_moved: list[str]
    backup_dir: str | None
    """None when there was nothing to move: the repair changed nothing."""


def truncate_after(
    log_dir: Path, seq: int, snapshots: Path | None = None, *, fs: FileSystem = REAL
) -> RepairReport:
    """Cut the log so that `seq` is its last record; `seq` must end a write batch.

    Snapshots in `snapshots` of seqs past `seq` describe the history being cut away: they move
    into the same backup, before the log is cut (a crash in between leaves a longer log and
    fewer snapshots, never a snapshot past the log's end).
    """
    lock = DirLock(log_dir, fs)
    try:
        return _truncate_after(log_dir, seq, snapshots, fs)
    finally:
        lock.release()


def accept_loss(log_dir: Path, snapshots: Path, *, fs: FileSystem = REAL) -> RepairReport:
    """Accept that the records past the log's end are gone: move the snapshots covering them
    into a backup, so the log as it is can be opened and used again.

    Opens the log as a server would (so a torn last write is cut first, and the end is durable
    before it is trusted).
    """
    with EventLog.open(log_dir, fs=fs) as log:
        end = log.last_seq
        backup = _Backup(log_dir, fs)
        moved = _move_snapshots(snapshots, end, backup, fs)
    return RepairReport(end, 0, 0, 0, moved, backup.name)


def _truncate_after(
    log_dir: Path, seq: int, snapshots: Path | None, fs: FileSystem
) -> RepairReport:
    segments = list_segments(log_dir, fs)
    if not segments:
        raise LogError(f"no segments in {log_dir}")
    if seq < segments[0].first_seq - 1:
        raise LogError(f"seq {seq} is before the log's first record {segments[0].first_seq}")
    position = max(i for i, s in enumerate(segments) if s.first_seq <= max(seq, 1))
    target = segments[position]
    later = segments[position + 1 :]
    data = fs.read_file(target.path)
    header_ok = _header_ok(target, data, seq)
    cut = SEGMENT_HEADER_SIZE
    if seq >= target.first_seq:
        cut = _offset_after(target.path, data, target.first_seq, seq, newest=not later)
    # what goes to the backup from the cut segment: [start, end); zeros after it are free space
    start = cut if header_ok else 0
    end = max(start, _written_end(data, target.first_seq) if header_ok else data_end(data, 0))
    backup = _Backup(log_dir, fs)
    moved = _move_snapshots(snapshots, seq, backup, fs) if snapshots is not None else []
    if end > start:
        name = target.path.name if start == 0 else f"{target.path.name}.tail"
        atomic_write(backup.path() / name, data[start:end], fs)
    moved_bytes = 0
    for segment in reversed(later):  # newest first: what stays is always a prefix of the log
        fd = fs.open(segment.path, os.O_RDWR)
        try:
            size = fs.size(fd)
            if segment is segments[-1]:  # its preallocated zeros are free space, not records
                size = _written_end(fs.read_file(segment.path), segment.first_seq)
                fs.truncate(fd, size)
                fs.fsync(fd)
            moved_bytes += size
        finally:
            fs.close(fd)
        fs.rename(segment.path, backup.path() / segment.path.name)
        fs.fsync_dir(backup.path())
        fs.fsync_dir(log_dir)
    changed = end > cut or bool(later) or not header_ok
    if changed:
        fd = fs.open(target.path, os.O_WRONLY)
        try:
            if not header_ok:  # backed up whole above; a fresh header makes it a segment again
                fsutil.write_all_at(fs, fd, encode_header(target.first_seq), 0)
            fs.truncate(fd, cut)
            fs.fsync(fd)
        finally:
            fs.close(fd)
    zeros = len(data) - end if changed else 0
    return RepairReport(seq, end - start + moved_bytes, zeros, len(later), moved, backup.name)


def _written_end(data: bytes, first_seq: int) -> int:
    """Where the written bytes of a segment end: past its last complete batch (a commit frame
    may end in zero bytes) and past any non-zero byte after it; only zeros follow."""
    scan = FrameScan(data, SEGMENT_HEADER_SIZE, first_seq)
    for _ in scan:
        pass
    return data_end(data, scan.good_end)


def _header_ok(target: SegmentFile, data: bytes, seq: int) -> bool:
    """Whether the cut segment's header is sound. A damaged one is fine only when nothing of the
    segment is kept (the cut is at its start): it is backed up and written afresh."""
    try:
        check_header(target.path, data, target.first_seq)
    except CorruptLogError as err:
        if seq >= target.first_seq:
            raise LogError(
                f"{err.kind} in {target.path}: none of its records can be kept; cut before it "
                f"with --truncate-after {target.first_seq - 1}"
            ) from None
        return False
    return True


class _Backup:
    """The `repair-<UTC time>[-n]` directory, made on first use: two repairs never share one,
    and a repair that moves nothing leaves nothing behind."""

    def __init__(self, log_dir: Path, fs: FileSystem) -> None:
        self._log_dir = log_dir
        self._fs = fs
        self._path: Path | None = None

    @property
    def name(self) -> str | None:
        return str(self._path) if self._path is not None else None

    def path(self) -> Path:
        if self._path is None:
            self._path = self._make()
        return self._path

    def _make(self) -> Path:
        stamp = time.strftime("repair-%Y%m%dT%H%M%SZ", time.gmtime())
        for attempt in range(1000):
            backup = self._log_dir / (stamp if attempt == 0 else f"{stamp}-{attempt}")
            try:
                self._fs.mkdir(backup, DIR_MODE)
            except FileExistsError:
                continue
            fsutil.fsync_dir(self._log_dir, self._fs)
            return backup
        raise LogError(f"cannot create a backup directory {stamp} in {self._log_dir}")


def _move_snapshots(directory: Path, seq: int, backup: _Backup, fs: FileSystem) -> list[str]:
    """Move every snapshot file of a seq past `seq` (damaged ones too) into the backup."""
    moved = []
    for snapshot_seq, path in SnapshotStore(directory, fs=fs).files():
        if snapshot_seq > seq:
            target = backup.path() / path.name
            fs.rename(path, target)
            moved.append(str(target))
    if moved:
        fs.fsync_dir(backup.path())
        fs.fsync_dir(directory)
    return moved


def _offset_after(path: Path, data: bytes, first_seq: int, seq: int, newest: bool) -> int:
    """Byte offset just past the commit frame of the batch ending at `seq`; every record up to
    it must be intact."""
    scan = FrameScan(data, SEGMENT_HEADER_SIZE, first_seq)
    batch_first = first_seq
    for record in scan:
        commit = scan.commit
        assert commit is not None  # records are only yielded once their batch is closed
        if record.seq == seq:
            if commit.seq != seq:
                raise LogError(
                    f"seq {seq} is inside a write batch (seqs {batch_first}..{commit.seq}, "
                    f"all-or-nothing on disk); cut at seq {batch_first - 1} or {commit.seq}"
                )
            return commit.end
        if record.seq == commit.seq:
            batch_first = record.seq + 1
    last = scan.good_seq
    if scan.clean or (newest and data_end(data, scan.good_end) == scan.good_end):
        raise LogError(f"seq {seq} is past the end of the log (its last record is seq {last})")
    kind = "unfinished batch" if scan.stop is Stop.END else scan.stop.value
    raise LogError(
        f"record {seq} is not intact in {path}: {kind} at offset {scan.stop_offset} "
        f"(seq {scan.next_seq}); the last intact batch ends at seq {last}"
    )
