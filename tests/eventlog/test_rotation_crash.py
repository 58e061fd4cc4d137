"""A SIGKILL at each step of segment rotation leaves a log that opens, with every acknowledged
record, no stray temp segment, and room for more appends."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from eventlog import EventLog
from eventlog.atomic import TEMP_PREFIX
from eventlog.segment import SEGMENT_HEADER_SIZE
from tests.eventlog.helpers import read_acked, segment_files, sha, spawn
from tests.eventlog.rotation_crash import POINTS

SEGMENT = 16 * 1024


@pytest.mark.crash
@pytest.mark.parametrize("nth", [1, 3])
@pytest.mark.parametrize("point", POINTS)
def test_kill_at_each_rotation_step(tmp_path: Path, point: str, nth: int) -> None:
    log_dir = tmp_path / "log"
    out = tmp_path / "acked.out"
    child = spawn("rotation_crash.py", str(log_dir), point, str(nth), stdout=out)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, stderr.decode(errors="replace")
    assert stderr.decode().strip().endswith(f"killing myself at {point}")
    acked = read_acked(out)
    assert acked, "nothing was acknowledged before the crash point"
    temps_before = list(log_dir.glob(f"{TEMP_PREFIX}*.seg"))
    segments = segment_files(log_dir)
    if point in ("partial-header", "after-header", "after-temp-sync"):
        assert len(temps_before) == 1, "the crash point was not inside rotation"
    if point in ("after-rename", "after-dir-sync"):
        assert len(segments) == nth + 1
        fresh = segments[-1].read_bytes()  # a header, then only preallocated zeros
        assert len(fresh) >= SEGMENT_HEADER_SIZE
        assert not fresh[SEGMENT_HEADER_SIZE:].strip(b"\0")
    if point == "before-temp-create":
        assert len(segments) == nth

    with EventLog.open(log_dir, segment_bytes=SEGMENT) as log:
        assert not list(log_dir.glob(f"{TEMP_PREFIX}*.seg"))
        assert log.recovery.temp_files_removed == len(temps_before)
        records = list(log.read())
        assert [r.seq for r in records] == list(range(1, log.last_seq + 1))
        for seq, digest in acked.items():
            assert sha(records[seq - 1].payload) == digest, f"acknowledged seq {seq} differs"
        assert len(segment_files(log_dir)) >= nth
        last = log.last_seq

        async def more() -> list[int]:
            return [await log.append(bytes([i]) * 3000) for i in range(12)]  # rotates again

        assert asyncio.run(more()) == list(range(last + 1, last + 13))
    with EventLog.open(log_dir, segment_bytes=SEGMENT) as log:
        assert log.recovery.torn_bytes == 0
        records = list(log.read())
        assert [r.seq for r in records] == list(range(1, last + 13))
        assert [r.payload for r in records[last:]] == [bytes([i]) * 3000 for i in range(12)]
        for seq, digest in acked.items():
            assert sha(records[seq - 1].payload) == digest
    for segment in segment_files(log_dir):
        assert segment.stat().st_size >= SEGMENT_HEADER_SIZE
