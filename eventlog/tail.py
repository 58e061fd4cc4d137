"""The end of the newest segment: a clean end, a torn write to cut, or corruption to refuse.

The rule (DESIGN.md, "The log"): the records of the complete batches are the log. Past the last
complete batch (at `good_end`), zeros are free space and anything else is the last write,
torn by a crash, unless something proves that write had been synced: a whole frame with the
wrong seq, or a commit frame of a later write (the writer starts a write only once the one
before it is on disk). Then it is corruption. Any distance, any segment size: the proof is
searched for over all of the rest of the segment.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, TypeVar

from eventlog.checkpoint import Checkpoint
from eventlog.errors import CorruptLogError
from eventlog.frame import FrameScan, Stop, data_end, later_commit
from eventlog.segment import SEGMENT_HEADER_SIZE


class Tail(NamedTuple):
    last_seq: int
    good_end: int
    """End of the last complete batch: where the log ends, and where a cut goes."""
    data_end: int
    """End of the non-zero bytes after `good_end` (equal to it when nothing is torn)."""
    size: int
    kind: str | None
    """What the torn bytes look like ("unfinished batch", "checksum mismatch", ...)."""
    checkpoint: Checkpoint | None
    """Of the last complete batch in this segment; None when the segment holds none."""

    @property
    def clean(self) -> bool:
        """Ends right after a complete batch, in end of file or zeros."""
        return self.data_end == self.good_end

    @property
    def torn_bytes(self) -> int:
        return self.data_end - self.good_end

    @property
    def zero_fill_bytes(self) -> int:
        """Zeros after the torn bytes: free space a cut drops with them, not damage."""
        return 0 if self.clean else self.size - self.data_end


def scan_tail(
    path: Path,
    data: bytes,
    first_seq: int,
    durable_floor: int = 0,
    start: tuple[int, int] | None = None,
) -> Tail:
    """Judge the newest segment (`data`), scanning from `start` = (offset, next seq), just past
    a verified checkpoint, or from the segment's first frame.

    Raises CorruptLogError when the damage cannot be a torn write, or when the log would end
    below `durable_floor`, a seq known to be acknowledged.
    """
    offset, next_seq = start if start is not None else (SEGMENT_HEADER_SIZE, first_seq)
    scan = FrameScan(data, offset, next_seq)
    for _ in scan:
        pass
    tail = judge(path, data, scan, first_seq)
    if tail.last_seq < durable_floor:
        raise CorruptLogError(
            path,
            tail.good_end,
            tail.last_seq + 1,
            tail.kind or "end of log",
            f"the log would end at seq {tail.last_seq}, but seqs up to {durable_floor} were "
            "acknowledged (a snapshot covers them)",
        )
    return tail


def judge(path: Path, data: bytes, scan: FrameScan, first_seq: int) -> Tail:
    """Apply the rule to a finished scan of a newest segment; raise CorruptLogError naming
    file, offset and seq where it is corruption."""
    good_end = scan.good_end
    if scan.stop in (Stop.SEQ, Stop.COMMIT):  # a whole, valid frame: written, never torn
        raise CorruptLogError(path, scan.stop_offset, scan.next_seq, scan.stop.value)
    end = data_end(data, good_end)
    kind: str | None = None
    if end > good_end:
        kind = "unfinished batch" if scan.stop_offset >= end else scan.stop.value
        later = later_commit(data, good_end, end)
        if later is not None:
            raise CorruptLogError(
                path,
                scan.stop_offset,
                scan.next_seq,
                kind,
                f"the commit frame of a later write at offset {later.offset} (batch ending "
                f"at seq {later.seq}) shows these bytes had been synced",
            )
    commit = scan.commit
    checkpoint = Checkpoint(first_seq, commit.offset, commit.seq, commit.crc) if commit else None
    return Tail(scan.good_seq, good_end, end, len(data), kind, checkpoint)


SETTLE_TRIES = 10
SETTLE_PAUSE = 0.005


_T = TypeVar("_T")


def settle(attempt: Callable[[], _T]) -> _T:
    """Run a judgement of a live log again while it finds corruption, a few times.

    A writer fills preallocated space, so a reader's copy of a segment can hold a later write
    whole and an earlier one not yet (it read those pages first): for a moment, a proof of
    corruption. Real damage stays; a write in flight lands within a few pauses.
    """
    for _ in range(SETTLE_TRIES):
        try:
            return attempt()
        except CorruptLogError:
            time.sleep(SETTLE_PAUSE)
    return attempt()
