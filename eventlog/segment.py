"""Segment files: `<first-seq, 20 digits>.seg`, each opening with a checksummed header.

The header pins the segment's first seq, so a renamed, swapped or truncated-away segment is
detected instead of silently shifting every seq after it.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import NamedTuple

import google_crc32c

from eventlog import fsutil
from eventlog.errors import CorruptLogError

MAGIC = b"RWSG"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<4sHHQ")
_CRC = struct.Struct("<I")
SEGMENT_HEADER_SIZE = _HEADER.size + _CRC.size
SUFFIX = ".seg"
TEMP_SUFFIX = ".seg.tmp"


class SegmentFile(NamedTuple):
    first_seq: int
    path: Path


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{SUFFIX}"


def encode_header(first_seq: int) -> bytes:
    head = _HEADER.pack(MAGIC, FORMAT_VERSION, 0, first_seq)
    return head + _CRC.pack(google_crc32c.value(head))


def check_header(path: Path, data: bytes, first_seq: int) -> None:
    """Raise CorruptLogError unless `data` starts with a valid header for `first_seq`."""
    if len(data) < SEGMENT_HEADER_SIZE:
        raise CorruptLogError(path, 0, first_seq, "short segment header", f"{len(data)} bytes")
    magic, version, _, header_seq = _HEADER.unpack_from(data)
    (crc,) = _CRC.unpack_from(data, _HEADER.size)
    if magic != MAGIC or google_crc32c.value(data[: _HEADER.size]) != crc:
        raise CorruptLogError(path, 0, first_seq, "bad segment header")
    if version != FORMAT_VERSION:
        raise CorruptLogError(path, 0, first_seq, f"unsupported segment format {version}")
    if header_seq != first_seq:
        raise CorruptLogError(
            path, 0, first_seq, "segment name and header disagree", f"header says {header_seq}"
        )


def list_segments(log_dir: Path) -> list[SegmentFile]:
    """Segments in seq order; stray names (temp files, .broken copies, LOCK) are not segments."""
    found: list[SegmentFile] = []
    for entry in os.scandir(log_dir):
        name = entry.name
        stem = name[: -len(SUFFIX)]
        if name.endswith(SUFFIX) and len(stem) == 20 and stem.isdigit():
            found.append(SegmentFile(int(stem), Path(entry.path)))
    found.sort()
    return found


def create_segment(log_dir: Path, first_seq: int, preallocate: int = 0) -> Path:
    """Create an empty segment durably: temp, header, preallocation, fsync, rename, fsync dir."""
    final = log_dir / segment_name(first_seq)
    tmp = log_dir / (segment_name(first_seq)[: -len(SUFFIX)] + TEMP_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        fsutil.write_all(fd, encode_header(first_seq))
        fsutil.fullsync(fd)
        fsutil.preallocate(fd, preallocate)
    finally:
        os.close(fd)
    os.rename(tmp, final)
    fsutil.fsync_dir(log_dir)
    return final


def remove_temp_segments(log_dir: Path) -> list[Path]:
    """Drop what a crash left half-made: segments being rotated in (they never held a record)
    and `atomic_write` temp files of a `.broken` copy (the repair reruns at this open)."""
    removed = [
        p
        for p in log_dir.iterdir()
        if p.name.endswith(TEMP_SUFFIX) or (p.name.startswith(".") and p.name.endswith(".tmp"))
    ]
    for path in removed:
        path.unlink()
    if removed:
        fsutil.fsync_dir(log_dir)
    return removed
