"""Classifying the end of the newest segment: a clean end, a torn write to cut, or corruption.

The rule (DESIGN.md, "The log"): the first short, bad-CRC or wrong-seq frame ends the log. If
nothing valid follows it, a crash tore the last write: cut it. If valid frames follow, or the cut
would drop a seq a snapshot already covers, acknowledged records are at stake: refuse.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

from eventlog.checkpoint import Checkpoint
from eventlog.errors import CorruptLogError
from eventlog.frame import FrameScan, Record, Stop, find_frame_after, frame_at, is_zero_fill
from eventlog.segment import SEGMENT_HEADER_SIZE


class Tail(NamedTuple):
    last_seq: int
    good_end: int
    stop: Stop
    stop_offset: int
    zero_fill: bool
    checkpoint: Checkpoint | None
    """Of the last complete record in this segment; None when the segment holds none."""

    @property
    def clean(self) -> bool:
        """Ends right after a complete group, in end of file or preallocated zeros."""
        return self.stop_offset == self.good_end and (self.stop is Stop.END or self.zero_fill)


def scan_tail(
    path: Path,
    data: bytes,
    first_seq: int,
    durable_floor: int = 0,
    start: tuple[int, int] | None = None,
) -> Tail:
    """Find where the valid, complete-group prefix of a newest segment ends.

    `start` = (offset, seq) of a verified record to scan from instead of the segment's start.
    Raises CorruptLogError when the damage cannot be a torn write.
    """
    offset, next_seq = start if start is not None else (SEGMENT_HEADER_SIZE, first_seq)
    scan = FrameScan(data, offset, next_seq)
    last: Record | None = None
    for record in scan:
        last = record
    good_end, last_seq = scan.good_end, scan.good_seq
    checkpoint = Checkpoint(first_seq, last.offset, last.seq, last.crc) if last else None
    zero_fill = judge_stop(path, data, scan)
    if last_seq < durable_floor:
        raise CorruptLogError(
            path,
            good_end,
            last_seq + 1,
            scan.stop.value if scan.stop is not Stop.END else "unfinished group",
            f"cutting here would drop seqs up to {durable_floor} that a snapshot covers",
        )
    return Tail(last_seq, good_end, scan.stop, scan.stop_offset, zero_fill, checkpoint)


def judge_stop(path: Path, data: bytes, scan: FrameScan) -> bool:
    """Where a finished scan of a newest segment stopped: raise CorruptLogError unless it can
    be a torn write or free space; True when the rest is zero fill (preallocated space)."""
    if scan.stop is Stop.SEQ:
        raise CorruptLogError(path, scan.stop_offset, scan.next_seq, "wrong seq")
    if scan.stop is Stop.END:
        return False
    if is_zero_fill(data, scan.stop_offset):
        return True
    follower = find_frame_after(data, scan.stop_offset + 1, scan.next_seq)
    if follower is not None:
        raise CorruptLogError(
            path,
            scan.stop_offset,
            scan.next_seq,
            scan.stop.value,
            f"valid records follow at offset {follower}",
        )
    return False


SETTLE_TRIES = 10
SETTLE_PAUSE = 0.005


def in_flight(path: Path, offset: int, seq: int) -> bool:
    """Whether damage seen by a reader was a write in flight rather than real.

    A writer fills preallocated space, so a reader can see a later page of a write before an
    earlier one: a torn frame with valid frames after it, for a moment. If the frame becomes
    whole within a few pauses it was such a write; if it stays torn, the damage is real.
    """
    for _ in range(SETTLE_TRIES):
        time.sleep(SETTLE_PAUSE)
        if frame_at(path.read_bytes(), offset, seq) is not None:
            return True
    return False
