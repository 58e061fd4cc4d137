"""Read-only, exhaustive check of a log directory: every header, CRC, seq and segment boundary.

Unlike `EventLog.open`, which stops at the first problem, verify walks on and reports every
damage it can locate, so an operator can choose a cut with `rewind log repair`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec

from eventlog.errors import CorruptLogError
from eventlog.frame import FrameScan, Stop, is_zero_fill
from eventlog.segment import SEGMENT_HEADER_SIZE, check_header, list_segments
from eventlog.tail import in_flight, scan_tail


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
) -> VerifyReport:
    """Check every segment; `on_record(seq, payload)` sees each complete record in order."""
    report = VerifyReport(segments=[], damage=[])
    segments = list_segments(log_dir)
    expected: int | None = None
    for index, segment in enumerate(segments):
        newest = index == len(segments) - 1
        data = segment.path.read_bytes()
        report.bytes += len(data)
        if expected is not None and segment.first_seq != expected:
            report.damage.append(
                Damage(
                    str(segment.path),
                    0,
                    expected,
                    "gap between segments",
                    f"segment starts at seq {segment.first_seq}",
                )
            )
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
        records = scan.good_seq - segment.first_seq + 1
        last = scan.good_seq
        ends_clean = scan.good_end == scan.stop_offset and (
            scan.stop is Stop.END or (newest and is_zero_fill(data, scan.stop_offset))
        )
        if not ends_clean:
            report.damage.append(_classify(segment.path, segment.first_seq, data, scan, newest))
        report.segments.append(
            SegmentInfo(str(segment.path), segment.first_seq, last, records, len(data))
        )
        report.records += records
        expected = last + 1
        if on_progress:
            on_progress(len(data))
    if report.segments:
        report.first_seq = report.segments[0].first_seq
        report.last_seq = report.segments[-1].last_seq
    return report


def _classify(path: Path, first_seq: int, data: bytes, scan: FrameScan, newest: bool) -> Damage:
    kind = "unfinished group" if scan.stop is Stop.END else scan.stop.value
    if not newest:
        return Damage(
            str(path), scan.good_end, scan.good_seq + 1, kind, "damage in an older segment"
        )
    try:
        tail = scan_tail(path, data, first_seq)
    except CorruptLogError as err:
        if in_flight(path, err.offset, err.seq):
            return Damage(str(path), err.offset, err.seq, "write in flight", fatal=False)
        return Damage(str(path), err.offset, err.seq, err.kind, err.detail)
    return Damage(
        str(path),
        tail.good_end,
        tail.last_seq + 1,
        "torn tail",
        f"{len(data) - tail.good_end} bytes will be cut at the next open",
        fatal=False,
    )
