"""open_readonly follows a live writer in another process: always a contiguous prefix that
holds everything acknowledged before the read began, never an error."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from eventlog import EventLog
from tests.eventlog.helpers import check_self_describing, read_acked, sha, spawn


@pytest.mark.timeout(120)
@pytest.mark.parametrize("segment", [128 * 1024, 8 * 1024])
def test_readonly_reader_follows_a_live_writer(tmp_path: Path, segment: int) -> None:
    """With 8 KiB segments the writer rotates all the time: regression (defect 3) for the
    false "gap between segments" a listing taken mid-rotation gave (10 of 25 reads)."""
    log_dir = tmp_path / "log"
    out = tmp_path / "acked.out"
    child = spawn("crash_writer.py", str(log_dir), "77", str(segment), "16", stdout=out)
    reads = 0
    seen = 0
    segments_seen: set[int] = set()
    try:
        deadline = time.monotonic() + 10
        while not read_acked(out):
            assert child.poll() is None, child.communicate()[1].decode(errors="replace")
            assert time.monotonic() < deadline, "the writer never acknowledged anything"
            time.sleep(0.01)
        stop = time.monotonic() + 4
        while time.monotonic() < stop:
            acked = read_acked(out)  # acknowledged before the reader starts: must be visible
            with EventLog.open_readonly(log_dir) as reader:
                assert reader.readonly
                records = list(reader.read())
            assert [r.seq for r in records] == list(range(1, len(records) + 1))
            assert len(records) >= seen, "the log went backwards"
            assert len(records) >= max(acked, default=0), "an acknowledged record is not visible"
            for seq, digest in acked.items():
                assert sha(records[seq - 1].payload) == digest
            check_self_describing(records)
            seen = len(records)
            segments_seen.add(len(list(log_dir.glob("*.seg"))))
            reads += 1
        assert child.poll() is None, "the writer died while being followed"
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate()
    assert reads >= 5 and seen > 100
    assert len(segments_seen) > 1, "the writer never rotated while followed"


def test_readonly_never_writes_or_repairs(tmp_path: Path) -> None:
    from tests.eventlog.helpers import segment_files, tree, write_model

    write_model(tmp_path, [[b"a"], [b"b", b"c"]])
    with segment_files(tmp_path)[-1].open("ab") as handle:
        handle.write(b"\x01torn")
    before = tree(tmp_path)
    with EventLog.open_readonly(tmp_path) as reader:
        assert [r.payload for r in reader.read()] == [b"a", b"b", b"c"]
        assert reader.last_seq == 3
    assert tree(tmp_path) == before
