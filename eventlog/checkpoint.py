"""Checkpoints: the exact place of one batch's end, so a reader can start there, not at seq 1.

A checkpoint names the commit frame that closes a batch: its segment, its offset, the seq of
the batch's last record and the commit frame's CRC. That CRC covers the CRC of the batch's
bytes, so it pins the records themselves: a checkpoint from another history (a log cut and
regrown, a copied directory), even one with the same sizes and offsets, is detected, never
silently trusted. A snapshot stores the checkpoint of the last record it covers; opening and
reading from it skip everything before it, which keeps restart time proportional to the tail.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from eventlog.errors import CheckpointMismatchError
from eventlog.frame import COMMIT_SIZE, commit_at
from eventlog.segment import SEGMENT_HEADER_SIZE, SegmentFile, segment_name
from eventlog.vfs import REAL, FileSystem


class Checkpoint(NamedTuple):
    segment: int
    """First seq of the segment holding the commit frame (names the file)."""
    offset: int
    """Offset of the commit frame; reading resumes right after it."""
    seq: int
    """Seq of the last record of the batch the commit frame closes."""
    crc: int
    """CRC of the commit frame."""

    @property
    def end(self) -> int:
        return self.offset + COMMIT_SIZE


def verify(
    log_dir: Path, segments: list[SegmentFile], checkpoint: Checkpoint, fs: FileSystem = REAL
) -> int:
    """Check the commit frame is where the checkpoint says; return the offset just past it."""
    if checkpoint.segment not in {s.first_seq for s in segments}:
        raise CheckpointMismatchError(
            f"checkpoint of seq {checkpoint.seq} names segment {checkpoint.segment}, "
            "which this log does not have"
        )
    path = log_dir / segment_name(checkpoint.segment)
    fd = fs.open(path, os.O_RDONLY)
    try:
        size = fs.size(fd)
        if not SEGMENT_HEADER_SIZE <= checkpoint.offset <= size - COMMIT_SIZE:
            raise CheckpointMismatchError(
                f"checkpoint offset {checkpoint.offset} is outside {path.name} ({size} bytes)"
            )
        blob = fs.pread(fd, COMMIT_SIZE, checkpoint.offset)
    finally:
        fs.close(fd)
    commit = commit_at(blob, 0)
    if commit is None or commit.seq != checkpoint.seq or commit.crc != checkpoint.crc:
        raise CheckpointMismatchError(
            f"the batch ending at seq {checkpoint.seq} is not at offset {checkpoint.offset} of "
            f"{path.name} (or differs from the one the checkpoint saw)"
        )
    return checkpoint.end
