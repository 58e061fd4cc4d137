"""Read-only, exhaustive check of a log directory: every header, CRC, seq, batch and segment
boundary.

Unlike `EventLog.open`, which stops at the first problem, verify walks on and reports every
damage it can locate, so an operator can choose a cut with `rewind log repair`. It judges the
newest segment's end by the same rule as open (`tail.judge`): a torn last write is a note
(open will cut it), anything else is damage.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec

from eventlog.errors import CorruptLogError
from eventlog.frame import FrameScan, Stop
from eventlog.segment import (
    SEGMENT_HEADER_SIZE,
    SegmentFile,
    check_header,
    list_segments,
    segment_name,
)
from eventlog.tail import Tail, judge, settle
from eventlog.vfs import REAL, FileSystem


class Damage(msgspec.Struct, frozen=True):
    file: str
    offset: int
    seq: int
    kind: str
    detail: str = ""
    fatal: bool = True


class SegmentInfo(msgspec.Struct, frozen=True):
    file: str
    first_seq: int
    last_seq: int
    records: int
    bytes: int


class VerifyReport(msgspec.Struct):
    segments: list[SegmentInfo]
    damage: list[Damage]
    records: int = 0
    first_seq: int = 0
    last_seq: int = 0
    bytes: int = 0

    @property
    def healthy(self) -> bool:
        """True unless something other than a repairable torn tail was found."""
        return not any(d.fatal for d in self.damage)


def verify_log(
    log_dir: Path,
    on_record: Callable[[int, bytes], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    fs: FileSystem = REAL,
) -> VerifyReport:
    """Check every segment; `on_record(seq, payload)` sees each record of a complete batch."""
    report = VerifyReport(segments=[], damage=[])
    segments = list_segments(log_dir, fs)
    expected: int | None = None
    index = 0
    while index < len(segments):
        segment = segments[index]
        if expected is not None and segment.first_seq != expected:
            missed = log_dir / segment_name(expected)
            if segment.first_seq > expected and fs.exists(missed):
                segments.insert(index, SegmentFile(expected, missed))  # listed mid-rotation
                continue
            report.damage.append(
                Damage(
                    str(segment.path),
                    0,
                    expected,
                    "gap between segments",
                    f"segment starts at seq {segment.first_seq}",
                )
            )
        newest = index == len(segments) - 1
        index += 1
        data = fs.read_file(segment.path)
        report.bytes += len(data)
        try:
            check_header(segment.path, data, segment.first_seq)
        except CorruptLogError as err:
            report.damage.append(Damage(str(segment.path), 0, segment.first_seq, err.kind))
            expected = None
            if on_progress:
                on_progress(len(data))
            continue
        scan = FrameScan(data, SEGMENT_HEADER_SIZE, segment.first_seq)
        for record in scan:
            if on_record:
                on_record(record.seq, record.payload)
        if not scan.clean:
            found = _newest(segment, data, scan, fs) if newest else _older(segment, scan)
            if found is not None:
                report.damage.append(found)
        records = scan.good_seq - segment.first_seq + 1
        report.segments.append(
            SegmentInfo(str(segment.path), segment.first_seq, scan.good_seq, records, len(data))
        )
        report.records += records
        expected = scan.good_seq + 1
        if on_progress:
            on_progress(len(data))
    if report.segments:
        report.first_seq = report.segments[0].first_seq
        report.last_seq = report.segments[-1].last_seq
    return report


def _older(segment: SegmentFile, scan: FrameScan) -> Damage:
    kind = "unfinished batch" if scan.stop is Stop.END else scan.stop.value
    return Damage(
        str(segment.path), scan.stop_offset, scan.next_seq, kind, "damage in an older segment"
    )


def _newest(segment: SegmentFile, data: bytes, scan: FrameScan, fs: FileSystem) -> Damage | None:
    """The newest segment's end, by open's rule: zeros are fine, a torn write is a note."""
    path = segment.path
    try:
        tail = judge(path, data, scan, segment.first_seq)
    except CorruptLogError as err:
        try:  # a live writer's write in flight settles; real damage stays
            settle(lambda: _judge_again(path, segment.first_seq, fs))
        except CorruptLogError:
            return Damage(str(path), err.offset, err.seq, err.kind, err.detail)
        return Damage(str(path), err.offset, err.seq, "write in flight", fatal=False)
    if tail.clean:
        return None
    zeros = f", then {tail.zero_fill_bytes} bytes of zeros" if tail.zero_fill_bytes else ""
    return Damage(
        str(path),
        tail.good_end,
        tail.last_seq + 1,
        "torn tail",
        f"{tail.torn_bytes} bytes of a torn last write ({tail.kind}){zeros} will be cut "
        "at the next open",
        fatal=False,
    )


def _judge_again(path: Path, first_seq: int, fs: FileSystem) -> Tail:
    data = fs.read_file(path)
    scan = FrameScan(data, SEGMENT_HEADER_SIZE, first_seq)
    for _ in scan:
        pass
    return judge(path, data, scan, first_seq)
