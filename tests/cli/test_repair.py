"""`rewind log repair --truncate-after SEQ`: the operator's explicit cut. It refuses while the
log is held and refuses cuts that would split a group; when it cuts, every removed byte (tail
bytes, whole later segments, snapshots of the cut history) is kept in the backup, and the log
left behind verifies clean, opens, and loads to exactly the state at SEQ."""

from __future__ import annotations

import random
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from eventlog import EventLog
from eventlog.repair import truncate_after
from eventlog.snapshot import SUFFIX
from projections import encode_state
from service.layout import DataDir
from service.state_store import load_state
from tests.service.helpers import (
    FRAME_HEADER,
    ROOT,
    SEGMENT_HEADER,
    FrameInfo,
    append,
    assert_one_error_line,
    fold,
    frames,
    history,
    make_with_snapshots,
    run_rewind,
    tree_digest,
)

N = 600
SNAPS = [150, 300, 450]
SEGMENT_BYTES = 8192


@pytest.fixture(scope="module")
def payloads() -> list[bytes]:
    return history(N, 21)


@pytest.fixture
def data_dir(tmp_path: Path, payloads: list[bytes]) -> DataDir:
    data_dir, _ = make_with_snapshots(
        tmp_path / "data",
        payloads,
        SNAPS,
        rng=random.Random(7),
        segment_bytes=SEGMENT_BYTES,
    )
    return data_dir


def _ends_of_groups(found: list[FrameInfo]) -> list[FrameInfo]:
    return [f for f in found if not f.continues]


def _pick_cut(found: list[FrameInfo], segment_index: int, low: int, high: int) -> FrameInfo:
    """A group's last record inside segment number `segment_index`, mid-segment."""
    segments = sorted({f.segment for f in found})
    target = segments[segment_index]
    inside = [f for f in _ends_of_groups(found) if f.segment == target and low < f.seq < high]
    assert len(inside) >= 3, "the fixture should put a few groups there"
    return inside[len(inside) // 2]


def _snapshot_names(data_dir: DataDir) -> list[str]:
    return sorted(p.name for p in data_dir.snapshots.iterdir())


def test_repair_backs_up_every_removed_byte(data_dir: DataDir, payloads: list[bytes]) -> None:
    found = frames(data_dir.log)
    assert len({f.segment for f in found}) >= 6
    assert any(f.continues for f in found), "the log should hold append_many groups"
    cut = _pick_cut(found, 2, 150, 300)
    seg_before = {p.name: p.read_bytes() for p in data_dir.log.glob("*.seg")}
    snap_before = {p.name: p.read_bytes() for p in data_dir.snapshots.iterdir()}

    result = run_rewind("log", "repair", data_dir.root, "--truncate-after", cut.seq)
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(
        r"kept records up to seq (\d+); moved (\d+) bytes \((\d+) whole segments\) and "
        r"(\d+) snapshots to (\S+)",
        result.stdout.strip(),
    )
    assert match, result.stdout
    kept, moved_bytes, moved_segments, retired, backup_name = match.groups()
    backup = Path(backup_name)
    assert int(kept) == cut.seq
    assert backup.is_dir()

    # The cut segment: what stays plus the backed-up tail is exactly the original file.
    end = cut.offset + FRAME_HEADER.size + cut.length
    original = seg_before[cut.segment.name]
    assert cut.segment.read_bytes() == original[:end]
    assert (backup / f"{cut.segment.name}.tail").read_bytes() == original[end:]
    # Every later segment moved whole, byte for byte.
    later = sorted(name for name in seg_before if name > cut.segment.name)
    assert later and int(moved_segments) == len(later)
    for name in later:
        assert not (data_dir.log / name).exists()
        assert (backup / name).read_bytes() == seg_before[name]
    assert int(moved_bytes) == len(original) - end + sum(len(seg_before[n]) for n in later)
    # Snapshots of the cut history retired into the backup, the older one kept in place.
    assert _snapshot_names(data_dir) == [f"{150:020d}{SUFFIX}"]
    assert int(retired) == 2
    for seq in (300, 450):
        name = f"{seq:020d}{SUFFIX}"
        assert (backup / name).read_bytes() == snap_before[name]
    # Nothing else appeared in the backup: every byte is accounted for, once.
    assert sorted(p.name for p in backup.iterdir()) == sorted(
        [f"{cut.segment.name}.tail", *later, f"{300:020d}{SUFFIX}", f"{450:020d}{SUFFIX}"]
    )

    verify = run_rewind("log", "verify", data_dir.root, "--deep")
    assert verify.returncode == 0, verify.stdout
    assert f"seq 1..{cut.seq}," in verify.stdout
    assert "note:" not in verify.stdout and "damage:" not in verify.stdout

    state, report = load_state(data_dir)
    assert encode_state(state) == encode_state(fold(payloads, cut.seq))
    assert (report.snapshot_seq, report.events_replayed) == (150, cut.seq - 150)
    assert report.skipped_snapshots == []

    with EventLog.open(data_dir.log, segment_bytes=SEGMENT_BYTES) as log:
        assert log.last_seq == cut.seq
        assert log.recovery.bytes_cut == 0
        append(log, payloads[cut.seq : cut.seq + 10])
        assert log.last_seq == cut.seq + 10
    state, _ = load_state(data_dir)
    assert encode_state(state) == encode_state(fold(payloads, cut.seq + 10))


def test_repair_at_a_segment_boundary_moves_whole_segments(
    data_dir: DataDir, payloads: list[bytes]
) -> None:
    found = frames(data_dir.log)
    segments = sorted({f.segment for f in found})
    last_of_third = [f for f in found if f.segment == segments[2]][-1]
    assert not last_of_third.continues
    size = last_of_third.segment.stat().st_size
    result = run_rewind("log", "repair", data_dir.root, "--truncate-after", last_of_third.seq)
    assert result.returncode == 0, result.stderr
    assert f"({len(segments) - 3} whole segments)" in result.stdout
    assert last_of_third.segment.stat().st_size == size
    assert sorted(data_dir.log.glob("*.seg")) == segments[:3]
    assert run_rewind("log", "verify", data_dir.root).returncode == 0
    state, _ = load_state(data_dir)
    assert encode_state(state) == encode_state(fold(payloads, last_of_third.seq))


def test_repair_to_zero_keeps_an_empty_log(data_dir: DataDir) -> None:
    total = sum(p.stat().st_size for p in data_dir.log.glob("*.seg"))
    result = run_rewind("log", "repair", data_dir.root, "--truncate-after", 0)
    assert result.returncode == 0, result.stderr
    [segment] = sorted(data_dir.log.glob("*.seg"))
    assert segment.stat().st_size == SEGMENT_HEADER
    assert f"moved {total - SEGMENT_HEADER} bytes" in result.stdout
    assert _snapshot_names(data_dir) == []
    with EventLog.open(data_dir.log) as log:
        assert log.last_seq == 0


_HOLDER = """
import sys, time
from eventlog import EventLog
log = EventLog.open(sys.argv[1])
print("held", flush=True)
sys.stdin.read()
log.close()
"""


def test_repair_refuses_while_the_log_is_held(data_dir: DataDir) -> None:
    found = frames(data_dir.log)
    cut = _pick_cut(found, 2, 150, 300)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(data_dir.log)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        before = tree_digest(data_dir.root)  # after the holder's open (it preallocates)
        result = run_rewind("log", "repair", data_dir.root, "--truncate-after", cut.seq)
        line = assert_one_error_line(result)
        assert f"locked by process {holder.pid}" in line
        assert tree_digest(data_dir.root) == before
        assert not list(data_dir.log.glob("repair-*"))
    finally:
        holder.communicate("", timeout=30)
    assert holder.returncode == 0
    # Released: now it works.
    assert run_rewind("log", "repair", data_dir.root, "--truncate-after", cut.seq).returncode == 0


def test_repair_refuses_a_seq_inside_a_group(data_dir: DataDir) -> None:
    found = frames(data_dir.log)
    inside = [f for f in found if f.continues and f.seq > 10]
    assert inside
    before = tree_digest(data_dir.root)
    for member in (inside[0], inside[len(inside) // 2], inside[-1]):
        result = run_rewind("log", "repair", data_dir.root, "--truncate-after", member.seq)
        line = assert_one_error_line(result)
        assert "append_many group" in line and f"seq {member.seq}" in line
    assert tree_digest(data_dir.root) == before
    assert not list(data_dir.log.glob("repair-*"))


@pytest.mark.parametrize("seq", [N + 1, N + 1000])
def test_repair_refuses_a_seq_past_the_end(data_dir: DataDir, seq: int) -> None:
    before = tree_digest(data_dir.root)
    assert_one_error_line(run_rewind("log", "repair", data_dir.root, "--truncate-after", seq))
    assert tree_digest(data_dir.root) == before
    assert not list(data_dir.log.glob("repair-*"))


def test_repair_refuses_a_negative_seq(data_dir: DataDir) -> None:
    before = tree_digest(data_dir.root)
    result = run_rewind("log", "repair", data_dir.root, "--truncate-after", -1)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert tree_digest(data_dir.root) == before


def test_repair_cuts_a_corrupt_log_back_to_health(data_dir: DataDir, payloads: list[bytes]) -> None:
    """The workflow the error messages point to: verify names the damage, repair cuts before
    it, and the server can open again."""
    found = frames(data_dir.log)
    segments = sorted({f.segment for f in found})
    victim = [f for f in found if f.segment == segments[3]][5]
    with victim.segment.open("r+b") as handle:
        handle.seek(victim.offset + FRAME_HEADER.size + 2)
        handle.write(b"\xff\xfe")
    assert "Traceback" not in run_rewind("state", data_dir.root).stderr
    verify = run_rewind("log", "verify", data_dir.root, "--json")
    assert verify.returncode == 1
    cut = max(f.seq for f in _ends_of_groups(found) if f.seq < victim.seq)
    result = run_rewind("log", "repair", data_dir.root, "--truncate-after", cut)
    assert result.returncode == 0, result.stderr
    assert run_rewind("log", "verify", data_dir.root, "--deep").returncode == 0
    with EventLog.open(data_dir.log) as log:
        assert log.last_seq == cut
    state, _ = load_state(data_dir)
    assert encode_state(state) == encode_state(fold(payloads, cut))


def test_two_repairs_in_one_second_keep_both_backups(
    data_dir: DataDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen = types.SimpleNamespace(
        strftime=lambda fmt, _t=None: "repair-20260101T000000Z", gmtime=lambda: None
    )
    monkeypatch.setattr("eventlog.repair.time", frozen)
    found = frames(data_dir.log)
    segment = sorted({f.segment for f in found})[2]
    ends = [f for f in _ends_of_groups(found) if f.segment == segment]
    assert len(ends) >= 6
    first, second = ends[-2], ends[2]
    original = segment.read_bytes()
    truncate_after(data_dir.log, first.seq)
    truncate_after(data_dir.log, second.seq)
    backups = [p.read_bytes() for p in data_dir.log.glob("repair-*/*") if p.is_file()]
    first_end = first.offset + FRAME_HEADER.size + first.length
    second_end = second.offset + FRAME_HEADER.size + second.length
    assert original[second_end:first_end] in backups
    first_tail = original[first_end:]
    assert first_tail in backups, "the first repair's backup of its removed bytes was lost"
