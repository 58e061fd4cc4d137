"""Snapshot files: opaque state bytes pinned to the seq they reflect, sealed with a CRC.

Snapshots are a cache that bounds replay time; the log stays the truth. So a damaged snapshot
is skipped (and reported, and kept for inspection), never trusted, and one whose seq lies beyond
the log's end (the log was cut after it was taken) is ignored.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import google_crc32c

from eventlog import fsutil
from eventlog.atomic import atomic_write
from eventlog.checkpoint import Checkpoint

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

    def __init__(self, directory: Path | str, keep: int = DEFAULT_KEEP) -> None:
        self.directory = Path(directory)
        self.keep = keep
        self.skipped: list[SkippedSnapshot] = []

    def write(self, seq: int, data: bytes, checkpoint: Checkpoint | None = None) -> Path:
        """Store a snapshot durably, then drop all but the newest `keep`."""
        fsutil.make_dirs(self.directory)
        path = self.directory / f"{seq:020d}{SUFFIX}"
        atomic_write(path, encode_snapshot(seq, data, checkpoint))
        self._prune(seq)
        return path

    def files(self) -> list[tuple[int, Path]]:
        """(seq, path) of every snapshot file, oldest first, damaged ones included."""
        if not self.directory.is_dir():
            return []
        found = []
        for entry in os.scandir(self.directory):
            stem = entry.name[: -len(SUFFIX)]
            if entry.name.endswith(SUFFIX) and len(stem) == 20 and stem.isdigit():
                found.append((int(stem), Path(entry.path)))
        found.sort()
        return found

    def candidates(self, max_seq: int | None = None) -> Iterator[Snapshot]:
        """Valid snapshots at or before `max_seq`, newest first; damaged ones land in `skipped`."""
        for seq, path in reversed(self.files()):
            if max_seq is not None and seq > max_seq:
                continue
            try:
                snapshot = decode_snapshot(path, path.read_bytes())
            except (OSError, ValueError) as err:
                self.skipped.append(SkippedSnapshot(path, str(err)))
                continue
            if snapshot.seq != seq:
                self.skipped.append(SkippedSnapshot(path, f"file name says {seq}"))
                continue
            yield snapshot

    def latest(self, max_seq: int | None = None) -> Snapshot | None:
        """The newest valid snapshot at or before `max_seq` (the log's end), if any."""
        return next(self.candidates(max_seq), None)

    def _prune(self, written: int) -> None:
        """Keep the snapshot just written and the newest `keep - 1` below it.

        Snapshots of later seqs describe a history the log no longer holds (the state just
        written is of the log's end): they are renamed `.stale`, kept for inspection, never
        loaded again, and never allowed to push the fresh snapshot out.
        """
        files = self.files()
        below = [path for seq, path in files if seq < written]
        old = below[: max(0, len(below) - (self.keep - 1))]
        for path in old:
            path.unlink(missing_ok=True)
        stale = [path for seq, path in files if seq > written]
        for path in stale:
            os.replace(path, path.with_name(path.name + ".stale"))
        if old or stale:
            fsutil.fsync_dir(self.directory)
