"""Segment files: `<first-seq, 20 digits>.seg`, each opening with a checksummed header.

The header pins the segment's first seq, so a renamed, swapped or truncated-away segment is
detected instead of silently shifting every seq after it, and the segment format version, so
a build never misreads frames it does not know.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import NamedTuple

import google_crc32c

from eventlog import fsutil
from eventlog.atomic import TEMP_PREFIX
from eventlog.errors import CorruptLogError, LogError, UnsupportedFormatError
from eventlog.vfs import FILE_MODE, REAL, FileSystem

MAGIC = b"RWSG"
FORMAT_VERSION = 2
"""1: records with a per-group "continues" flag. 2: batches closed by commit frames."""
_HEADER = struct.Struct("<4sHHQ")
_CRC = struct.Struct("<I")
SEGMENT_HEADER_SIZE = _HEADER.size + _CRC.size
SUFFIX = ".seg"


class SegmentFile(NamedTuple):
    first_seq: int
    path: Path


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{SUFFIX}"


def segment_seq(name: str) -> int | None:
    """The first seq a segment file name carries, or None if the name is not a segment's."""
    stem = name[: -len(SUFFIX)]
    if name.endswith(SUFFIX) and len(stem) == 20 and stem.isdigit():
        return int(stem)
    return None


def encode_header(first_seq: int) -> bytes:
    head = _HEADER.pack(MAGIC, FORMAT_VERSION, 0, first_seq)
    return head + _CRC.pack(google_crc32c.value(head))


def check_header(path: Path, data: bytes, first_seq: int) -> None:
    """Raise unless `data` starts with a valid header for `first_seq` in this build's format."""
    if len(data) < SEGMENT_HEADER_SIZE:
        raise CorruptLogError(path, 0, first_seq, "short segment header", f"{len(data)} bytes")
    magic, version, _, header_seq = _HEADER.unpack_from(data)
    (crc,) = _CRC.unpack_from(data, _HEADER.size)
    if magic != MAGIC or google_crc32c.value(data[: _HEADER.size]) != crc:
        raise CorruptLogError(path, 0, first_seq, "bad segment header")
    if version != FORMAT_VERSION:
        raise UnsupportedFormatError(path, version, FORMAT_VERSION)
    if header_seq != first_seq:
        raise CorruptLogError(
            path, 0, first_seq, "segment name and header disagree", f"header says {header_seq}"
        )


def read_header(path: Path, first_seq: int, fs: FileSystem = REAL) -> None:
    """check_header on the first bytes of a segment file, without reading the rest."""
    fd = fs.open(path, os.O_RDONLY)
    try:
        check_header(path, fs.pread(fd, SEGMENT_HEADER_SIZE, 0), first_seq)
    finally:
        fs.close(fd)


def list_segments(log_dir: Path, fs: FileSystem = REAL) -> list[SegmentFile]:
    """Segments in seq order. Other names (temp files, `.broken` copies, LOCK, backups) are not
    segments; something named like a segment that is not a regular file is an error."""
    found: list[SegmentFile] = []
    for entry in fs.list_dir(log_dir):
        first_seq = segment_seq(entry.name)
        if first_seq is None:
            continue
        path = log_dir / entry.name
        if not entry.is_file:
            raise LogError(
                f"{path} is named like a segment but is not a regular file; "
                f"move it out of {log_dir}"
            )
        found.append(SegmentFile(first_seq, path))
    found.sort()
    return found


def create_segment(
    log_dir: Path, first_seq: int, preallocate: int = 0, fs: FileSystem = REAL
) -> Path:
    """Create an empty segment durably: temp, header, preallocation, fsync, rename, fsync dir."""
    final = log_dir / segment_name(first_seq)
    tmp = log_dir / f"{TEMP_PREFIX}{final.name}"
    fd = fs.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        fsutil.write_all(fs, fd, encode_header(first_seq))
        fs.fsync(fd)
        fsutil.preallocate(fs, fd, preallocate)
    finally:
        fs.close(fd)
    fs.rename(tmp, final)
    fs.fsync_dir(log_dir)
    return final


def remove_temp_files(log_dir: Path, fs: FileSystem = REAL) -> list[Path]:
    """Drop what a crash left half-made in the log directory: segments being rotated in (they
    never held a record) and `atomic_write` temp files of a `.broken` copy (the cut reruns at
    this open). Only the engine's own temp names; any other file is left alone."""
    removed = [
        log_dir / entry.name
        for entry in fs.list_dir(log_dir)
        if entry.is_file and entry.name.startswith(TEMP_PREFIX)
    ]
    for path in removed:
        fs.unlink(path)
    if removed:
        fs.fsync_dir(log_dir)
    return removed
