"""Checkpoints: the exact place of one record, so a reader can start there instead of seq 1.

A snapshot stores the checkpoint of the last record it covers. Opening and reading from it
skip everything before it, which keeps restart time proportional to the tail, not the history.
The CRC pins the record itself: a checkpoint from another history (a log cut and regrown, a
copied directory) is detected, never silently trusted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from eventlog.errors import CheckpointMismatchError
from eventlog.frame import HEADER, HEADER_SIZE, LENGTH_MASK, frame_at
from eventlog.segment import SEGMENT_HEADER_SIZE, SegmentFile, segment_name


class Checkpoint(NamedTuple):
    segment: int
    """First seq of the segment holding the record (names the file)."""
    offset: int
    seq: int
    crc: int


def verify(log_dir: Path, segments: list[SegmentFile], checkpoint: Checkpoint) -> int:
    """Check the record is where the checkpoint says; return the offset just past it."""
    if checkpoint.segment not in {s.first_seq for s in segments}:
        raise CheckpointMismatchError(
            f"checkpoint of seq {checkpoint.seq} names segment {checkpoint.segment}, "
            "which this log does not have"
        )
    path = log_dir / segment_name(checkpoint.segment)
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if not SEGMENT_HEADER_SIZE <= checkpoint.offset <= size - HEADER_SIZE:
            raise CheckpointMismatchError(
                f"checkpoint offset {checkpoint.offset} is outside {path.name} ({size} bytes)"
            )
        handle.seek(checkpoint.offset)
        head = handle.read(HEADER_SIZE)
        length = HEADER.unpack(head)[0] & LENGTH_MASK
        blob = head + handle.read(min(length, size - checkpoint.offset - HEADER_SIZE))
    frame = frame_at(blob, 0, checkpoint.seq)
    if frame is None or frame.crc != checkpoint.crc or frame.continues:
        raise CheckpointMismatchError(
            f"record {checkpoint.seq} is not at offset {checkpoint.offset} of {path.name} "
            "(or differs from the one the checkpoint saw)"
        )
    return checkpoint.offset + HEADER_SIZE + len(frame.payload)
