"""The operator's explicit cut for a corrupt log: keep records up to SEQ, back up the rest.

Nothing is deleted: removed tail bytes and whole later segments move into a `repair-<time>`
directory beside the segments. Refuses while a server holds the log.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from eventlog import fsutil
from eventlog.atomic import atomic_write
from eventlog.errors import LogError
from eventlog.frame import HEADER_SIZE, FrameScan
from eventlog.lock import DirLock
from eventlog.segment import SEGMENT_HEADER_SIZE, check_header, list_segments


class RepairReport(msgspec.Struct, frozen=True):
    kept_last_seq: int
    bytes_removed: int
    segments_moved: int
    backup_dir: str


def truncate_after(
    log_dir: Path, seq: int, before_cut: Callable[[Path], None] | None = None
) -> RepairReport:
    """Cut the log so that `seq` is its last record.

    `before_cut(backup_dir)` runs under the lock once the cut is validated, so the caller can
    retire files that describe the removed history (snapshots past `seq`) in the same backup.
    """
    lock = DirLock(log_dir)
    try:
        return _truncate_after(log_dir, seq, before_cut)
    finally:
        lock.release()


def _truncate_after(
    log_dir: Path, seq: int, before_cut: Callable[[Path], None] | None
) -> RepairReport:
    segments = list_segments(log_dir)
    if not segments:
        raise LogError(f"no segments in {log_dir}")
    if seq < segments[0].first_seq - 1:
        raise LogError(f"seq {seq} is before the log's first record {segments[0].first_seq}")
    position = max(i for i, s in enumerate(segments) if s.first_seq <= max(seq, 1))
    target = segments[position]
    data = target.path.read_bytes()
    check_header(target.path, data, target.first_seq)
    cut = SEGMENT_HEADER_SIZE
    if seq >= target.first_seq:
        cut = _offset_after(target.path, data, target.first_seq, seq)
    backup = _new_backup_dir(log_dir)
    if before_cut is not None:
        before_cut(backup)
    removed = data[cut:]
    if removed:
        atomic_write(backup / f"{target.path.name}.tail", removed)
    later = segments[position + 1 :]
    for segment in reversed(later):
        os.rename(segment.path, backup / segment.path.name)
        fsutil.fsync_dir(backup)
        fsutil.fsync_dir(log_dir)
    fd = os.open(target.path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, cut)
        fsutil.fullsync(fd)
    finally:
        os.close(fd)
    moved_bytes = sum((backup / s.path.name).stat().st_size for s in later)
    return RepairReport(seq, len(removed) + moved_bytes, len(later), str(backup))


def _new_backup_dir(log_dir: Path) -> Path:
    """A fresh `repair-<UTC time>[-n]` directory: two repairs never share (or overwrite) one."""
    stamp = time.strftime("repair-%Y%m%dT%H%M%SZ", time.gmtime())
    for attempt in range(1000):
        backup = log_dir / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            backup.mkdir()
        except FileExistsError:
            continue
        fsutil.fsync_dir(log_dir)
        return backup
    raise LogError(f"cannot create a backup directory {stamp} in {log_dir}")


def _offset_after(path: Path, data: bytes, first_seq: int, seq: int) -> int:
    """Byte offset just past record `seq`; every record up to it must be intact."""
    scan = FrameScan(data, SEGMENT_HEADER_SIZE, first_seq)
    for frame in scan:
        if frame.seq == seq:
            if frame.continues:
                raise LogError(
                    f"seq {seq} is inside an append_many group; cut before the group or after "
                    "its last record"
                )
            return frame.offset + HEADER_SIZE + len(frame.payload)
    raise LogError(
        f"record {seq} is not intact in {path}: {scan.stop.value} at offset "
        f"{scan.stop_offset} (seq {scan.next_seq}); choose a seq below {scan.next_seq}"
    )
