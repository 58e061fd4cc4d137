"""The log directory as the engine finds it: segments listed while a writer rotates, stray
files an operator left, a segment file in a format this build does not read."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import google_crc32c
import pytest

from eventlog import EventLog, FileSystem, LogError, UnsupportedFormatError
from eventlog.atomic import TEMP_PREFIX
from eventlog.verify import verify_log
from eventlog.vfs import DirEntry
from tests.eventlog.helpers import segment_files, tree, write_sequential


class MissesASegment(FileSystem):
    """A directory listing that leaves out one segment, as a listing taken while the writer
    renames a new segment into place can (ext4 hashes names; a rename moves entries)."""

    def __init__(self, missing: str) -> None:
        self.missing = missing

    def list_dir(self, path: Path) -> list[DirEntry]:
        return [entry for entry in super().list_dir(path) if entry.name != self.missing]


def test_a_listing_that_misses_a_segment_is_no_gap(tmp_path: Path) -> None:
    """Regression (defect 3): readers took the listing as the chain of segments, so a listing
    made during a rotation gave "gap between segments" on a healthy log. The chain is followed
    by name: after a segment whose last record is N comes `<N+1>.seg`."""
    groups = [[bytes([i]) * 700] for i in range(40)]
    model = write_sequential(tmp_path, groups, segment_bytes=4096)
    names = [p.name for p in segment_files(tmp_path)]
    assert len(names) >= 6
    for missing in names[1:-1]:
        fs = MissesASegment(missing)
        with EventLog.open_readonly(tmp_path, fs=fs) as reader:
            model.check_exact(list(reader.read()))
            assert [r.seq for r in reader.read(3)] == list(range(3, model.last_seq + 1))
        report = verify_log(tmp_path, fs=fs)
        assert report.healthy and report.records == model.last_seq, missing
        assert len(report.segments) == len(names)


def test_a_real_gap_is_still_named(tmp_path: Path) -> None:
    groups = [[bytes([i]) * 700] for i in range(40)]
    write_sequential(tmp_path, groups, segment_bytes=4096)
    lost = segment_files(tmp_path)[2]
    lost.unlink()
    with EventLog.open_readonly(tmp_path) as reader, pytest.raises(LogError) as caught:
        list(reader.read())
    assert "gap between segments" in str(caught.value)
    assert lost.name in str(caught.value)


def test_a_directory_named_like_a_segment_is_a_clear_error(tmp_path: Path) -> None:
    """Regression (defect 6): it gave a raw IsADirectoryError."""
    write_sequential(tmp_path, [[b"a"], [b"b"]])
    stray = tmp_path / "00000000000000000900.seg"
    stray.mkdir()
    for attempt in (
        lambda: EventLog.open(tmp_path),
        lambda: EventLog.open_readonly(tmp_path),
        lambda: verify_log(tmp_path),
    ):
        with pytest.raises(LogError) as caught:
            attempt()
        assert not isinstance(caught.value, IsADirectoryError)
        assert f"{stray} is named like a segment but is not a regular file" in str(caught.value)


def test_open_removes_only_the_engines_own_temp_files(tmp_path: Path) -> None:
    """Regression (defect 6): open deleted any `.*.tmp` in the log directory, an operator's
    included. Only names with the engine's own prefix are its temp files."""
    write_sequential(tmp_path, [[b"a"], [b"b", b"c"]])
    mine = [
        tmp_path / f"{TEMP_PREFIX}00000000000000000004.seg",
        tmp_path / f"{TEMP_PREFIX}00000000000000000001.seg.broken.4242",
    ]
    theirs = [tmp_path / ".notes.tmp", tmp_path / ".00000000000000000004.seg.tmp"]
    for path in [*mine, *theirs]:
        path.write_bytes(b"half made")
    with EventLog.open(tmp_path) as log:
        assert log.recovery.temp_files_removed == len(mine)
        assert log.last_seq == 3
    assert not any(p.exists() for p in mine)
    assert all(p.read_bytes() == b"half made" for p in theirs)


def test_a_segment_in_the_old_format_is_refused_clearly(tmp_path: Path) -> None:
    """Format 1 (per-group "continues" flags, no commit frames) is not read as format 2."""
    write_sequential(tmp_path, [[b"a"], [b"b"]])
    segment = segment_files(tmp_path)[0]
    data = bytearray(segment.read_bytes())
    head = struct.pack("<4sHHQ", b"RWSG", 1, 0, 1)
    data[:20] = head + struct.pack("<I", google_crc32c.value(head))
    segment.write_bytes(bytes(data))
    before = tree(tmp_path)
    for opener in (EventLog.open, EventLog.open_readonly):
        with pytest.raises(UnsupportedFormatError) as caught:
            opener(tmp_path)
        message = str(caught.value)
        assert str(segment) in message
        assert "segment format 1" in message and "reads format 2" in message
        assert "an older rewind" in message
    assert tree(tmp_path) == before


def test_appends_continue_after_a_listing_race(tmp_path: Path) -> None:
    """A writer's own reader, with the listing missing a segment, still reads everything."""
    write_sequential(tmp_path, [[bytes([i]) * 900] for i in range(20)], segment_bytes=4096)
    missing = segment_files(tmp_path)[1].name

    async def go() -> None:
        with EventLog.open(tmp_path, segment_bytes=4096, fs=MissesASegment(missing)) as log:
            seq = await log.append(b"one more")
            assert [r.seq for r in log.read()] == list(range(1, seq + 1))

    asyncio.run(go())
