"""Reading records in seq order across segments, every CRC, batch and link of the chain checked.

A reader needs no lock and changes nothing, so the same code serves the writer's own reads, a
read-only tool, and a process following a live writer. What differs is only where a read may
stop: a writer's reader at its last durable seq, any other at the last complete batch on disk.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from eventlog.checkpoint import Checkpoint, verify
from eventlog.errors import CorruptLogError
from eventlog.frame import FrameScan, Record, Stop
from eventlog.segment import (
    SEGMENT_HEADER_SIZE,
    SegmentFile,
    check_header,
    list_segments,
    segment_name,
)
from eventlog.tail import SETTLE_PAUSE, SETTLE_TRIES, judge
from eventlog.vfs import FileSystem

DurableEnd = Callable[[], int]
"""The writer's last durable seq, asked for when a read starts; absent for a reader of a log
another process (or nobody) writes."""


def read_records(
    fs: FileSystem,
    log_dir: Path,
    start: int,
    checkpoint: Checkpoint | None,
    durable_end: DurableEnd | None,
) -> Iterator[Record]:
    """Records from `start` on, in seq order across segments, every CRC checked.

    With a `checkpoint` before `start`, reading begins right after it rather than at its
    segment's start; a checkpoint that does not match raises CheckpointMismatchError here,
    before iterating.
    """
    segments = list_segments(log_dir, fs)
    if not segments:
        return iter(())
    if checkpoint is not None and checkpoint.seq < start:
        end = verify(log_dir, segments, checkpoint, fs)
        return _records(
            fs,
            log_dir,
            start,
            durable_end,
            current=checkpoint.segment,
            offset=end,
            next_seq=checkpoint.seq + 1,
        )
    chosen = segments[0]
    for segment in segments:
        if segment.first_seq <= start:
            chosen = segment
    return _records(
        fs,
        log_dir,
        start,
        durable_end,
        current=chosen.first_seq,
        offset=SEGMENT_HEADER_SIZE,
        next_seq=chosen.first_seq,
    )


def _records(
    fs: FileSystem,
    log_dir: Path,
    start: int,
    durable_end: DurableEnd | None,
    *,
    current: int,
    offset: int,
    next_seq: int,
) -> Iterator[Record]:
    """Walk the segment chain by name from `current`: after a segment whose last batch ends
    at seq N comes `<N+1>.seg`. A directory listing taken while the writer rotates can miss
    a segment; a name looked up when it is needed cannot.

    What cannot be decided from one read (a segment read just before the writer sealed it,
    a write in flight at the newest segment's end) is read again, a few times, from the last
    complete batch: a live writer settles within a few pauses, real damage stays.
    """
    limit = durable_end() if durable_end is not None else None
    retries = 0
    while True:
        path = log_dir / segment_name(current)
        data = fs.read_file(path)
        check_header(path, data, current)
        scan = FrameScan(data, offset, next_seq)
        for record in scan:
            if limit is not None and record.seq > limit:
                return
            if record.seq >= start:
                yield record
        if limit is not None and scan.good_seq >= limit:
            return  # every durable record is read; what follows is a write in flight
        offset, next_seq = scan.good_end, scan.good_seq + 1
        successor = log_dir / segment_name(next_seq)
        if scan.clean and next_seq != current and fs.exists(successor):
            current, offset, retries = next_seq, SEGMENT_HEADER_SIZE, 0
            continue
        later = _later_segment(fs, log_dir, current)
        newest = later is None
        try:
            if not newest or limit is not None:
                # a segment before the newest ends at a commit frame and the file's end,
                # and the next one is named after the seq that follows
                raise _chain_damage(path, scan, later, next_seq)
            if not scan.clean:
                judge(path, data, scan, current)  # zeros or a torn end: not there yet
            return
        except CorruptLogError:
            retries += 1
            if limit is not None or retries > SETTLE_TRIES:
                raise
            time.sleep(SETTLE_PAUSE)


def _later_segment(fs: FileSystem, log_dir: Path, current: int) -> SegmentFile | None:
    return next((s for s in list_segments(log_dir, fs) if s.first_seq > current), None)


def _chain_damage(
    path: Path, scan: FrameScan, later: SegmentFile | None, next_seq: int
) -> CorruptLogError:
    if not scan.clean:
        kind = "unfinished batch" if scan.stop is Stop.END else scan.stop.value
        return CorruptLogError(
            path, scan.stop_offset, scan.next_seq, kind, "damage before the log's durable end"
        )
    assert later is not None
    return CorruptLogError(
        path.with_name(segment_name(next_seq)),
        0,
        next_seq,
        "gap between segments",
        f"no segment starts at seq {next_seq}; the next one starts at {later.first_seq}",
    )
