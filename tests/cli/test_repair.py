"""`rewind log repair`: the operator's explicit cut (`--truncate-after SEQ`) and acceptance of a
loss (`--accept-loss`). It refuses while the log is held and refuses cuts that would split a
write batch; when it cuts, every removed byte (tail bytes, whole later segments, snapshots of
the cut history) is kept in the backup, preallocated zeros are not, and the log left behind
verifies clean, opens, and loads to exactly the state at SEQ. A repair with nothing to do
changes nothing and leaves no backup directory."""

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


def _ends_of_batches(found: list[FrameInfo]) -> list[FrameInfo]:
    return [f for f in found if not f.continues]


def _pick_cut(found: list[FrameInfo], low: int, high: int) -> FrameInfo:
    """A group's last record mid-segment, in the segment that holds the seq halfway between
    `low` and `high` (chosen by seq, not by segment number: how many segments lie before it
    depends on how large the generator's events are). Several segments follow it."""
    segments = sorted({f.segment for f in found})
    target = next(f.segment for f in found if f.seq == (low + high) // 2)
    assert segments.index(target) <= len(segments) - 3, "segments should follow the cut"
    inside = [f for f in _ends_of_batches(found) if f.segment == target and low < f.seq < high]
    assert len(inside) >= 3, "the fixture should put a few groups there"
    return inside[len(inside) // 2]


def _snapshot_names(data_dir: DataDir) -> list[str]:
    return sorted(p.name for p in data_dir.snapshots.iterdir())


def test_repair_backs_up_every_removed_byte(data_dir: DataDir, payloads: list[bytes]) -> None:
    found = frames(data_dir.log)
    assert len({f.segment for f in found}) >= 6
    assert any(f.continues for f in found), "the log should hold append_many groups"
    cut = _pick_cut(found, 150, 300)
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
    end = cut.batch_end
    original = seg_before[cut.segment.name]
    assert cut.segment.read_bytes() == original[:end]
    assert (backup / f"{cut.segment.name}.tail").read_bytes() == original[end:]
    # Every later segment moved whole, byte for byte (the newest without its preallocated
    # zeros: free space, not records).
    later = sorted(name for name in seg_before if name > cut.segment.name)
    assert later and int(moved_segments) == len(later)
    written = {name: seg_before[name] for name in later}
    written[later[-1]] = written[later[-1]][: found[-1].batch_end]
    assert not seg_before[later[-1]][found[-1].batch_end :].strip(b"\0")
    for name in later:
        assert not (data_dir.log / name).exists()
        assert (backup / name).read_bytes() == written[name]
    assert int(moved_bytes) == len(original) - end + sum(len(b) for b in written.values())
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
        assert log.recovery.torn_bytes == 0
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
    """Everything moves to the backup except the newest segment's preallocated zeros (a
    regression: they made a `.tail` of megabytes of zeros)."""
    segments = sorted(data_dir.log.glob("*.seg"))
    newest = segments[-1].read_bytes()
    zeros = len(newest) - len(newest.rstrip(b"\0"))
    assert zeros > 0, "the newest segment ends in preallocated space"
    written = sum(p.stat().st_size for p in segments) - zeros
    result = run_rewind("log", "repair", data_dir.root, "--truncate-after", 0)
    assert result.returncode == 0, result.stderr
    [segment] = sorted(data_dir.log.glob("*.seg"))
    assert segment.stat().st_size == SEGMENT_HEADER
    assert f"moved {written - SEGMENT_HEADER} bytes" in result.stdout
    backup = Path(result.stdout.strip().split(" to ")[-1])
    assert (backup / segments[-1].name).read_bytes() == newest[: len(newest) - zeros]
    assert sum(p.stat().st_size for p in backup.glob("*.seg*")) == written - SEGMENT_HEADER
    assert _snapshot_names(data_dir) == []
    with EventLog.open(data_dir.log) as log:
        assert log.last_seq == 0


def test_a_cut_in_the_newest_segment_copies_no_zeros(data_dir: DataDir) -> None:
    found = frames(data_dir.log)
    newest = found[-1].segment
    ends = [f for f in _ends_of_batches(found) if f.segment == newest]
    assert len(ends) >= 2
    cut = ends[-2]
    original = newest.read_bytes()
    zeros = len(original) - found[-1].batch_end
    assert zeros > 0 and not original[found[-1].batch_end :].strip(b"\0")
    result = run_rewind("log", "repair", data_dir.root, "--truncate-after", cut.seq)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(f"; dropped {zeros} bytes of preallocated zeros")
    backup = Path(result.stdout.split(" to ")[-1].split(";")[0])
    tail = (backup / f"{newest.name}.tail").read_bytes()
    assert tail == original[cut.batch_end : found[-1].batch_end]
    assert newest.read_bytes() == original[: cut.batch_end]


def test_repair_to_zero_replaces_a_damaged_first_header(data_dir: DataDir) -> None:
    """Regression: a cut of everything must not need the first segment's header (it answered
    with advice to run repair); the damaged file is backed up whole and a fresh header written."""
    first = sorted(data_dir.log.glob("*.seg"))[0]
    original = first.read_bytes()
    with first.open("r+b") as handle:
        handle.write(b"XXXX")
    damaged = first.read_bytes()
    verify = run_rewind("log", "verify", data_dir.root)
    assert verify.returncode == 1
    result = run_rewind("log", "repair", data_dir.root, "--truncate-after", 0)
    assert result.returncode == 0, result.stderr
    assert "rewind log repair" not in result.stdout + result.stderr
    backup = Path(result.stdout.strip().split(" to ")[-1])
    assert (backup / first.name).read_bytes() == damaged
    assert original[4:] == damaged[4:]
    assert run_rewind("log", "verify", data_dir.root).returncode == 0
    with EventLog.open(data_dir.log) as log:
        assert log.last_seq == 0


def test_a_damaged_header_names_the_cut_that_works(data_dir: DataDir) -> None:
    segments = sorted(data_dir.log.glob("*.seg"))
    victim = segments[2]
    first_seq = int(victim.name[:20])
    with victim.open("r+b") as handle:
        handle.write(b"XXXX")
    before = tree_digest(data_dir.root)
    result = run_rewind("log", "repair", data_dir.root, "--truncate-after", first_seq + 3)
    line = assert_one_error_line(result)
    assert str(victim) in line and f"--truncate-after {first_seq - 1}" in line
    assert "rewind log repair" not in line, "a repair error must not advise running repair"
    assert tree_digest(data_dir.root) == before


def test_a_repair_with_nothing_to_do_changes_nothing(data_dir: DataDir) -> None:
    """Regression: cutting at the log's own end made an empty `repair-*` directory."""
    last = frames(data_dir.log)[-1]
    before = tree_digest(data_dir.root)
    result = run_rewind("log", "repair", data_dir.root, "--truncate-after", last.seq)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"nothing to cut: the log already ends at seq {last.seq}"
    assert tree_digest(data_dir.root) == before
    assert not list(data_dir.log.glob("repair-*"))
    accept = run_rewind("log", "repair", data_dir.root, "--accept-loss")
    assert accept.returncode == 0, accept.stderr
    assert accept.stdout.strip() == (
        f"nothing to accept: no snapshot is past the log's end (seq {last.seq})"
    )
    assert not list(data_dir.log.glob("repair-*"))


def test_accept_loss_moves_the_snapshots_past_the_end(
    data_dir: DataDir, payloads: list[bytes]
) -> None:
    """A lost newest segment: the snapshots prove records are gone, so state refuses, naming
    both seqs, until the operator accepts the loss."""
    segments = sorted(data_dir.log.glob("*.seg"))
    lost = next(p for p in segments if SNAPS[-2] < int(p.name[:20]) <= SNAPS[-1])
    log_end = int(lost.name[:20]) - 1
    for path in segments[segments.index(lost) :]:  # the newest segments are gone
        path.unlink()
    line = assert_one_error_line(run_rewind("state", data_dir.root))
    assert f"covers seq {SNAPS[-1]} but the log ends at seq {log_end}" in line
    result = run_rewind("log", "repair", data_dir.root, "--accept-loss")
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(
        rf"the log ends at seq {log_end}; moved 1 snapshots past it to (\S+)",
        result.stdout.strip(),
    )
    assert match, result.stdout
    assert (Path(match.group(1)) / f"{SNAPS[-1]:020d}{SUFFIX}").exists()
    state, report = load_state(data_dir)
    assert encode_state(state) == encode_state(fold(payloads, log_end))
    assert report.snapshot_seq == max(s for s in SNAPS if s <= log_end)


def test_repair_needs_exactly_one_action(data_dir: DataDir) -> None:
    before = tree_digest(data_dir.root)
    options: list[list[str | int]] = [[], ["--truncate-after", 5, "--accept-loss"]]
    for args in options:
        line = assert_one_error_line(run_rewind("log", "repair", data_dir.root, *args))
        assert "--truncate-after SEQ or --accept-loss" in line
    assert tree_digest(data_dir.root) == before


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
    cut = _pick_cut(found, 150, 300)
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


def test_repair_refuses_a_seq_inside_a_batch(data_dir: DataDir) -> None:
    found = frames(data_dir.log)
    inside = [f for f in found if f.continues and f.seq > 10]
    assert inside
    before = tree_digest(data_dir.root)
    for member in (inside[0], inside[len(inside) // 2], inside[-1]):
        result = run_rewind("log", "repair", data_dir.root, "--truncate-after", member.seq)
        line = assert_one_error_line(result)
        assert "inside a write batch" in line and f"seq {member.seq}" in line
        batch = [f.seq for f in found if f.batch_end == member.batch_end]
        assert f"cut at seq {batch[0] - 1} or {batch[-1]}" in line
    assert tree_digest(data_dir.root) == before
    assert not list(data_dir.log.glob("repair-*"))


@pytest.mark.parametrize("seq", [N + 1, N + 1000])
def test_repair_refuses_a_seq_past_the_end(data_dir: DataDir, seq: int) -> None:
    """Regression: on a healthy log it said "checksum mismatch" (it read preallocated zeros)."""
    before = tree_digest(data_dir.root)
    line = assert_one_error_line(
        run_rewind("log", "repair", data_dir.root, "--truncate-after", seq)
    )
    assert f"seq {seq} is past the end of the log (its last record is seq {N})" in line
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
    cut = max(f.seq for f in _ends_of_batches(found) if f.seq < victim.seq)
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
    ends = [f for f in _ends_of_batches(found) if f.segment == segment]
    assert len(ends) >= 6
    first, second = ends[-2], ends[2]
    original = segment.read_bytes()
    truncate_after(data_dir.log, first.seq)
    truncate_after(data_dir.log, second.seq)
    backups = [p.read_bytes() for p in data_dir.log.glob("repair-*/*") if p.is_file()]
    first_end = first.batch_end
    second_end = second.batch_end
    assert original[second_end:first_end] in backups
    first_tail = original[first_end:]
    assert first_tail in backups, "the first repair's backup of its removed bytes was lost"
