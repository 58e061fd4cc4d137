"""Snapshot files: opaque state bytes pinned to the seq they reflect, sealed with a CRC.

Snapshots are a cache that bounds replay time; the log stays the truth. So a damaged snapshot
is skipped (and reported, and kept for inspection), never trusted. But a valid snapshot is also
evidence: it is written only once the records it covers are durable, so one whose seq lies
beyond the log's end means acknowledged records are gone. That is refused (LostRecordsError),
never skipped; `rewind log repair` is how an operator accepts the loss.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import google_crc32c

from eventlog import fsutil
from eventlog.atomic import atomic_write
from eventlog.checkpoint import Checkpoint
from eventlog.errors import LostRecordsError
from eventlog.vfs import REAL, FileSystem

# magic, version, reserved, seq, checkpoint segment (0: none), offset, record crc, length, then
# crc32c of all of that and the data: a flipped bit in the seq or checkpoint is caught too
_HEADER = struct.Struct("<4sHHQQQIQI")
_COVERED = _HEADER.size - 4
_MAGIC = b"RWSN"
_VERSION = 1
SUFFIX = ".snap"
DEFAULT_KEEP = 3


class Snapshot(NamedTuple):
    seq: int
    data: bytes
    path: Path
    checkpoint: Checkpoint | None
    """Where record `seq` sits in the log, so loading can start reading right after it."""


class SkippedSnapshot(NamedTuple):
    path: Path
    reason: str


def encode_snapshot(seq: int, data: bytes, checkpoint: Checkpoint | None) -> bytes:
    if checkpoint is not None and checkpoint.seq != seq:
        raise ValueError(f"checkpoint of seq {checkpoint.seq} given for a snapshot of seq {seq}")
    segment, offset, record_crc = (
        (checkpoint.segment, checkpoint.offset, checkpoint.crc) if checkpoint else (0, 0, 0)
    )
    fields = (_MAGIC, _VERSION, 0, seq, segment, offset, record_crc, len(data))
    crc = google_crc32c.extend(google_crc32c.value(_HEADER.pack(*fields, 0)[:_COVERED]), data)
    return _HEADER.pack(*fields, crc) + data


def decode_snapshot(path: Path, blob: bytes) -> Snapshot:
    """Parse and verify a snapshot file's bytes; raises ValueError saying what is wrong."""
    if len(blob) < _HEADER.size:
        raise ValueError(f"{len(blob)} bytes is shorter than the header")
    magic, version, _, seq, segment, offset, record_crc, length, crc = _HEADER.unpack_from(blob)
    if magic != _MAGIC:
        raise ValueError("bad magic")
    if version != _VERSION:
        raise ValueError(f"unsupported snapshot file version {version}")
    data = blob[_HEADER.size :]
    if len(data) != length:
        raise ValueError(f"length {len(data)} but header says {length}")
    if google_crc32c.extend(google_crc32c.value(blob[:_COVERED]), data) != crc:
        raise ValueError("checksum mismatch")
    checkpoint = Checkpoint(segment, offset, seq, record_crc) if segment else None
    return Snapshot(seq, data, path, checkpoint)


class SnapshotStore:
    """The `snapshots/` directory: `<seq, 20 digits>.snap` files, newest `keep` retained."""

    def __init__(
        self, directory: Path | str, keep: int = DEFAULT_KEEP, fs: FileSystem = REAL
    ) -> None:
        self.directory = Path(directory)
        self.keep = keep
        self.skipped: list[SkippedSnapshot] = []
        self._fs = fs

    def write(self, seq: int, data: bytes, checkpoint: Checkpoint | None = None) -> Path:
        """Store a snapshot durably, then drop all but the newest `keep`.

        Refuses (LostRecordsError, nothing written) while a valid snapshot of a later seq
        exists: the state being written is of the log's end, so that one covers records the log
        no longer has.
        """
        self.check_end(seq)
        fsutil.make_dirs(self.directory, self._fs)
        path = self.directory / f"{seq:020d}{SUFFIX}"
        atomic_write(path, encode_snapshot(seq, data, checkpoint), self._fs)
        self._prune(seq)
        return path

    def files(self) -> list[tuple[int, Path]]:
        """(seq, path) of every snapshot file, oldest first, damaged ones included."""
        if not self._fs.is_dir(self.directory):
            return []
        found = []
        for entry in self._fs.list_dir(self.directory):
            stem = entry.name[: -len(SUFFIX)]
            if entry.name.endswith(SUFFIX) and len(stem) == 20 and stem.isdigit():
                found.append((int(stem), self.directory / entry.name))
        found.sort()
        return found

    def check_end(self, log_end: int) -> None:
        """Raise LostRecordsError if a valid snapshot covers a seq past `log_end`, the end of
        a log that was made durable before it was read (damaged snapshot files prove nothing
        and land in `skipped`)."""
        for seq, path in reversed(self.files()):
            if seq <= log_end:
                return
            snapshot = self._load(seq, path)
            if snapshot is not None:
                raise LostRecordsError(path, snapshot.seq, log_end)

    def candidates(self, max_seq: int | None = None) -> Iterator[Snapshot]:
        """Valid snapshots at or before `max_seq`, newest first; damaged ones land in `skipped`."""
        for seq, path in reversed(self.files()):
            if max_seq is not None and seq > max_seq:
                continue
            snapshot = self._load(seq, path)
            if snapshot is not None:
                yield snapshot

    def _load(self, seq: int, path: Path) -> Snapshot | None:
        """The snapshot in `path` if it is valid and of `seq`; else None, noted in `skipped`."""
        try:
            snapshot = decode_snapshot(path, self._fs.read_file(path))
        except (OSError, ValueError) as err:
            self._skip(path, str(err))
            return None
        if snapshot.seq != seq:
            self._skip(path, f"file name says {seq}")
            return None
        return snapshot

    def _skip(self, path: Path, reason: str) -> None:
        if all(skipped.path != path for skipped in self.skipped):
            self.skipped.append(SkippedSnapshot(path, reason))

    def latest(self, max_seq: int | None = None) -> Snapshot | None:
        """The newest valid snapshot at or before `max_seq` (the log's end), if any."""
        return next(self.candidates(max_seq), None)

    def _prune(self, written: int) -> None:
        """Keep the snapshot just written and the newest `keep - 1` below it. (Damaged files of
        later seqs, which `check_end` let pass, are left for an operator to inspect.)"""
        below = [path for seq, path in self.files() if seq < written]
        old = below[: max(0, len(below) - (self.keep - 1))]
        for path in old:
            self._fs.unlink(path)
        if old:
            self._fs.fsync_dir(self.directory)
