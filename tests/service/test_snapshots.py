"""Snapshots are a cache, the log is the truth: whatever is wrong with a snapshot file, loading
state gives exactly the bytes of a full replay, and the report says what was skipped and why.

Every data directory here is a real log grown in phases, each snapshot taken with the checkpoint
the writer reported at that moment, the way the server takes them.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import msgspec
import pytest

import projections.codec
from eventlog import EventLog, LostRecordsError
from eventlog.repair import accept_loss, truncate_after
from eventlog.snapshot import SUFFIX, SnapshotStore, decode_snapshot, encode_snapshot
from projections import decode, encode, encode_state
from service.layout import DataDir
from service.state_store import KEEP_SNAPSHOTS, LoadReport, load_state, write_snapshot
from tests.service.helpers import (
    append,
    flip_bit,
    fold,
    full_replay,
    history,
    make_data_dir,
    make_with_snapshots,
    plan_groups,
)

N = 400
SNAPS = (100, 200, 300, 350)
HEADER_SIZE = 48


@pytest.fixture(scope="module")
def payloads() -> list[bytes]:
    return history(N, seed=11)


@pytest.fixture
def data_dir(tmp_path: Path, payloads: list[bytes]) -> DataDir:
    data_dir, _ = make_with_snapshots(tmp_path / "data", payloads, SNAPS)
    return data_dir


def snap_path(data_dir: DataDir, seq: int) -> Path:
    return data_dir.snapshots / f"{seq:020d}{SUFFIX}"


def load_both(data_dir: DataDir, at: int | None = None) -> tuple[bytes, LoadReport]:
    """load_state with and without a caller-provided reader must agree exactly."""
    state, report = load_state(data_dir, at=at)
    with EventLog.open_readonly(data_dir.log) as log:
        other, other_report = load_state(data_dir, at=at, log=log)
    assert encode_state(other) == encode_state(state)
    assert other_report.snapshot_seq == report.snapshot_seq
    assert other_report.events_replayed == report.events_replayed
    assert len(other_report.skipped_snapshots) == len(report.skipped_snapshots)
    return encode_state(state), report


def skipped_paths(report: LoadReport) -> list[str]:
    return [entry.split(": ", 1)[0] for entry in report.skipped_snapshots]


# -- the store itself --------------------------------------------------------------------------


def test_store_write_latest_and_keep_newest_three(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "snaps", keep=3)
    assert store.files() == []
    assert store.latest() is None
    for seq in (5, 10, 15, 20, 25):
        path = store.write(seq, f"state {seq}".encode())
        assert path.exists()
        assert path.name == f"{seq:020d}{SUFFIX}"
    assert [seq for seq, _ in store.files()] == [15, 20, 25]
    latest = store.latest()
    assert latest is not None
    assert (latest.seq, latest.data, latest.checkpoint) == (25, b"state 25", None)
    at_22 = store.latest(max_seq=22)
    assert at_22 is not None and at_22.seq == 20
    assert store.latest(max_seq=14) is None
    assert store.skipped == []


def test_store_ignores_stray_files(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, keep=3)
    store.write(7, b"seven")
    for name in ("notes.txt", "7.snap", f"{7:020d}.snap.tmp", f"{'x' * 20}{SUFFIX}"):
        (tmp_path / name).write_bytes(b"junk")
    assert [seq for seq, _ in store.files()] == [7]
    latest = store.latest()
    assert latest is not None and latest.data == b"seven"


def test_snapshot_checkpoint_must_be_of_its_seq(tmp_path: Path, payloads: list[bytes]) -> None:
    data_dir, checkpoints = make_with_snapshots(tmp_path / "d", payloads[:120], [100])
    with pytest.raises(ValueError, match="checkpoint of seq 100"):
        encode_snapshot(99, b"x", checkpoints[100])
    blob = encode_snapshot(100, b"state", checkpoints[100])
    decoded = decode_snapshot(tmp_path / "x", blob)
    assert decoded.checkpoint == checkpoints[100]
    assert decoded.data == b"state"
    del data_dir


def test_write_snapshot_keeps_the_policy_number(data_dir: DataDir) -> None:
    assert KEEP_SNAPSHOTS == 3
    names = sorted(p.name for p in data_dir.snapshots.iterdir())
    assert names == [f"{seq:020d}{SUFFIX}" for seq in SNAPS[-3:]]


# -- loading: the healthy paths ----------------------------------------------------------------


def test_newest_snapshot_is_used_and_only_the_tail_replayed(data_dir: DataDir) -> None:
    expected = full_replay(data_dir)
    got, report = load_both(data_dir)
    assert got == expected
    assert report.snapshot_seq == 350
    assert report.snapshot_file == str(snap_path(data_dir, 350))
    assert report.events_replayed == N - 350
    assert report.skipped_snapshots == []
    assert report.last_seq == N


@pytest.mark.parametrize("at", [0, 1, 99, 100, 101, 250, 300, 349, 350, 351, N, N + 50])
def test_load_at_uses_newest_snapshot_at_or_before(data_dir: DataDir, at: int) -> None:
    expected = full_replay(data_dir, upto=at)
    got, report = load_both(data_dir, at=at)
    assert got == expected
    usable = [s for s in SNAPS[-3:] if s <= at]
    base = max(usable) if usable else None
    assert report.snapshot_seq == base
    assert report.events_replayed == min(at, N) - (base or 0)
    assert report.last_seq == min(at, N)
    assert report.skipped_snapshots == []


def test_snapshot_without_checkpoint_still_bounds_replay(
    tmp_path: Path, payloads: list[bytes]
) -> None:
    data_dir = make_data_dir(tmp_path / "d", payloads)
    write_snapshot(data_dir, fold(payloads, 250))
    got, report = load_both(data_dir)
    assert got == full_replay(data_dir)
    assert (report.snapshot_seq, report.events_replayed) == (250, N - 250)


def test_snapshot_at_the_very_end_replays_nothing(tmp_path: Path, payloads: list[bytes]) -> None:
    data_dir, _ = make_with_snapshots(tmp_path / "d", payloads, [N])
    got, report = load_both(data_dir)
    assert got == full_replay(data_dir)
    assert (report.snapshot_seq, report.events_replayed) == (N, 0)


# -- loading: damaged snapshots ----------------------------------------------------------------


def _damage(path: Path, how: str) -> None:
    blob = path.read_bytes()
    if how == "flip in state bytes":
        flip_bit(path, HEADER_SIZE + (len(blob) - HEADER_SIZE) // 2, 3)
    elif how == "flip in last byte":
        flip_bit(path, len(blob) - 1, 7)
    elif how == "flip in magic":
        flip_bit(path, 1, 0)
    elif how == "flip in length":
        flip_bit(path, 36, 2)
    elif how == "flip in crc":
        flip_bit(path, 44, 5)
    elif how == "truncated by one byte":
        path.write_bytes(blob[:-1])
    elif how == "truncated to half":
        path.write_bytes(blob[: len(blob) // 2])
    elif how == "truncated inside header":
        path.write_bytes(blob[:20])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "extra byte":
        path.write_bytes(blob + b"\0")
    else:  # pragma: no cover
        raise AssertionError(how)


DAMAGE = [
    "flip in state bytes",
    "flip in last byte",
    "flip in magic",
    "flip in length",
    "flip in crc",
    "truncated by one byte",
    "truncated to half",
    "truncated inside header",
    "empty",
    "extra byte",
]


@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_newest_falls_back_to_previous(data_dir: DataDir, how: str) -> None:
    newest = snap_path(data_dir, 350)
    _damage(newest, how)
    damaged_bytes = newest.read_bytes()
    got, report = load_both(data_dir)
    assert got == full_replay(data_dir)
    assert report.snapshot_seq == 300
    assert report.events_replayed == N - 300
    assert skipped_paths(report) == [str(newest)], report.skipped_snapshots
    # Reported, kept for inspection, untouched.
    assert newest.read_bytes() == damaged_bytes


def test_two_damaged_fall_back_twice(data_dir: DataDir) -> None:
    _damage(snap_path(data_dir, 350), "flip in state bytes")
    _damage(snap_path(data_dir, 300), "truncated to half")
    got, report = load_both(data_dir)
    assert got == full_replay(data_dir)
    assert (report.snapshot_seq, report.events_replayed) == (200, N - 200)
    assert sorted(skipped_paths(report)) == [
        str(snap_path(data_dir, 300)),
        str(snap_path(data_dir, 350)),
    ]


def test_all_damaged_means_full_replay(data_dir: DataDir) -> None:
    for seq, how in zip(SNAPS[-3:], ["empty", "flip in crc", "flip in state bytes"], strict=True):
        _damage(snap_path(data_dir, seq), how)
    before = {p.name: p.read_bytes() for p in data_dir.snapshots.iterdir()}
    got, report = load_both(data_dir)
    assert got == full_replay(data_dir)
    assert report.snapshot_seq is None
    assert report.snapshot_file is None
    assert report.events_replayed == N
    assert sorted(skipped_paths(report)) == sorted(str(snap_path(data_dir, s)) for s in SNAPS[-3:])
    assert {p.name: p.read_bytes() for p in data_dir.snapshots.iterdir()} == before


OFFSET_FIELD = range(24 * 8, 32 * 8)
"""Bits of the header's checkpoint offset (u64 at byte 24), which the CRC does not cover."""


def _flip_header_bits(tmp_path: Path, payloads: list[bytes], bits: range | list[int]) -> None:
    data_dir, _ = make_with_snapshots(tmp_path / "d", payloads[:150], [60, 120])
    expected = full_replay(data_dir)
    newest = snap_path(data_dir, 120)
    original = newest.read_bytes()
    for bit in bits:
        flip_bit(newest, bit // 8, bit % 8)
        state, report = load_state(data_dir)
        assert encode_state(state) == expected, f"header bit {bit}"
        assert report.snapshot_seq in (None, 60, 120), bit
        newest.write_bytes(original)


def test_every_header_bit_flip_is_harmless(tmp_path: Path, payloads: list[bytes]) -> None:
    """The header's fields are not all under the CRC (seq, checkpoint): a flip in any of them must
    still never produce a different state, whatever it makes the loader do.

    The high bits of the checkpoint offset have their own regression test below."""
    bits = [b for b in range(HEADER_SIZE * 8) if b not in OFFSET_FIELD[44:]]
    _flip_header_bits(tmp_path, payloads, bits)


def test_flip_in_checkpoint_offset_high_bits_is_skipped(
    tmp_path: Path, payloads: list[bytes]
) -> None:
    """Regression: a huge checkpoint offset made verify() seek past the largest file size, and
    OSError (EINVAL) / ValueError escaped load_state instead of the snapshot being skipped."""
    _flip_header_bits(tmp_path, payloads, OFFSET_FIELD[44:])


def test_renamed_snapshot_is_not_trusted(data_dir: DataDir) -> None:
    """A file whose name and header disagree (copied over by hand) is skipped, not believed."""
    shutil.copyfile(snap_path(data_dir, 200), snap_path(data_dir, 390))
    got, report = load_both(data_dir)
    assert got == full_replay(data_dir)
    assert report.snapshot_seq == 350
    assert skipped_paths(report) == [str(snap_path(data_dir, 390))]
    assert "390" in report.skipped_snapshots[0] or "200" in report.skipped_snapshots[0]


# -- loading: snapshots of another history or another build ------------------------------------


def test_snapshot_past_the_logs_end_is_refused_until_the_loss_is_accepted(
    tmp_path: Path, payloads: list[bytes]
) -> None:
    """Regression (defect 5): the log lost its end after the snapshots were taken (here a cut
    that did not retire them). A snapshot is written only after the records it covers are
    durable, so this is evidence of lost acknowledged records: refused, naming both seqs, until
    an operator accepts the loss."""
    data_dir, _ = make_with_snapshots(tmp_path / "d", payloads, SNAPS)
    truncate_after(data_dir.log, 320)
    with EventLog.open_readonly(data_dir.log) as log:
        assert log.last_seq == 320
    before = {p.name: p.read_bytes() for p in data_dir.snapshots.iterdir()}
    for reader in (None, EventLog.open_readonly(data_dir.log)):
        with pytest.raises(LostRecordsError) as caught:
            load_state(data_dir, log=reader)
        assert (caught.value.snapshot_seq, caught.value.log_end) == (350, 320)
        assert caught.value.snapshot == snap_path(data_dir, 350)
        assert "350" in str(caught.value) and "320" in str(caught.value)
    with pytest.raises(LostRecordsError):
        load_state(data_dir, at=100)  # inspecting the past does not make the loss go away
    assert {p.name: p.read_bytes() for p in data_dir.snapshots.iterdir()} == before
    assert not list(data_dir.snapshots.glob("*.stale")), "never renamed away"

    report = accept_loss(data_dir.log, data_dir.snapshots)
    assert report.kept_last_seq == 320
    assert report.backup_dir is not None
    assert [Path(p).name for p in report.snapshots_moved] == [snap_path(data_dir, 350).name]
    assert Path(report.snapshots_moved[0]).read_bytes() == before[snap_path(data_dir, 350).name]
    got, load = load_both(data_dir)
    assert got == full_replay(data_dir)
    assert (load.last_seq, load.snapshot_seq, load.events_replayed) == (320, 300, 20)
    assert load.skipped_snapshots == []


def test_snapshot_past_the_end_without_checkpoint_is_refused(
    tmp_path: Path, payloads: list[bytes]
) -> None:
    data_dir = make_data_dir(tmp_path / "d", payloads[:200])
    write_snapshot(data_dir, fold(payloads, 150))
    write_snapshot(data_dir, fold(payloads, 260))
    with pytest.raises(LostRecordsError, match="covers seq 260 but the log ends at seq 200"):
        load_state(data_dir)


def test_damaged_snapshot_past_the_end_proves_nothing(
    tmp_path: Path, payloads: list[bytes]
) -> None:
    """Only a valid snapshot is evidence; a damaged one is reported and skipped as always."""
    data_dir = make_data_dir(tmp_path / "d", payloads[:200])
    write_snapshot(data_dir, fold(payloads, 150))
    (data_dir.snapshots / f"{260:020d}{SUFFIX}").write_bytes(b"not a snapshot")
    got, report = load_both(data_dir)
    assert got == full_replay(data_dir)
    assert (report.snapshot_seq, report.events_replayed) == (150, 50)
    assert skipped_paths(report) == [str(data_dir.snapshots / f"{260:020d}{SUFFIX}")]


def test_snapshot_of_another_state_version_is_rebuilt_from_the_log(
    tmp_path: Path, payloads: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir, checkpoints = make_with_snapshots(tmp_path / "d", payloads[:300], [100, 250])
    # A newer build rewrote the snapshot at 250: same file format and a checkpoint that matches
    # this log, so only its state version can disqualify it.
    monkeypatch.setattr(projections.codec, "STATE_VERSION", projections.codec.STATE_VERSION + 1)
    write_snapshot(data_dir, fold(payloads, 250), checkpoints[250])
    monkeypatch.undo()
    assert decode_snapshot(snap_path(data_dir, 250), snap_path(data_dir, 250).read_bytes())
    store = SnapshotStore(data_dir.snapshots)
    assert [seq for seq, _ in store.files()] == [100, 250]
    got, report = load_both(data_dir)
    assert got == full_replay(data_dir)
    assert (report.snapshot_seq, report.events_replayed) == (100, 200)
    assert len(report.skipped_snapshots) == 1
    message = report.skipped_snapshots[0]
    assert str(snap_path(data_dir, 250)) in message
    assert f"version {projections.codec.STATE_VERSION + 1}" in message
    assert "rebuild from the log" in message


def test_only_snapshot_of_another_state_version_means_full_replay(
    tmp_path: Path, payloads: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = make_data_dir(tmp_path / "d", payloads[:200])
    monkeypatch.setattr(projections.codec, "STATE_VERSION", 0)
    write_snapshot(data_dir, fold(payloads, 200))
    monkeypatch.undo()
    got, report = load_both(data_dir)
    assert got == full_replay(data_dir)
    assert (report.snapshot_seq, report.events_replayed) == (None, 200)
    assert "version 0" in report.skipped_snapshots[0]


def retimed(payloads: list[bytes], delta: float) -> list[bytes]:
    """The same events with other wall-clock stamps: same sizes and offsets, other bytes."""
    return [
        encode(msgspec.structs.replace(env, ts=env.ts + delta))
        for env in (decode(p) for p in payloads)
    ]


def test_snapshot_of_a_cut_and_regrown_log_is_not_trusted(
    tmp_path: Path, payloads: list[bytes]
) -> None:
    """Snapshot at 300, log cut at 250 (without retiring it), then regrown past 300 with other
    records: the snapshot's seq is inside the log again, but it describes another history."""
    data_dir, _ = make_with_snapshots(tmp_path / "d", payloads, [200, 300])
    truncate_after(data_dir.log, 250)
    other = retimed(payloads, 3600.0)
    with EventLog.open(data_dir.log, segment_bytes=16 * 1024) as log:
        append(log, other[250:], plan_groups(N - 250, random.Random(5)))
        assert log.last_seq == N
    expected = full_replay(data_dir)
    assert other[250:] != payloads[250:], "the regrown records must differ"
    got, report = load_both(data_dir)
    assert got == expected
    assert (report.snapshot_seq, report.events_replayed) == (200, 200)
    assert skipped_paths(report) == [str(snap_path(data_dir, 300))]


@pytest.mark.parametrize("source", ["same events, other times", "another history"])
def test_snapshot_copied_from_another_data_dir_is_not_trusted(
    tmp_path: Path, payloads: list[bytes], source: str
) -> None:
    foreign_payloads = retimed(payloads, 1.0) if source.startswith("same") else history(N, 12)
    foreign, _ = make_with_snapshots(tmp_path / "foreign", foreign_payloads, [320])
    data_dir, _ = make_with_snapshots(tmp_path / "d", payloads, [150])
    shutil.copyfile(snap_path(foreign, 320), snap_path(data_dir, 320))
    got, report = load_both(data_dir)
    assert got == full_replay(data_dir)
    assert (report.snapshot_seq, report.events_replayed) == (150, N - 150)
    assert skipped_paths(report) == [str(snap_path(data_dir, 320))]
    assert "checkpoint" in report.skipped_snapshots[0] or "record" in report.skipped_snapshots[0]


def test_only_foreign_snapshot_means_full_replay(tmp_path: Path, payloads: list[bytes]) -> None:
    foreign, _ = make_with_snapshots(tmp_path / "foreign", retimed(payloads, 1.0), [320])
    data_dir = make_data_dir(tmp_path / "d", payloads)
    data_dir.snapshots.mkdir()
    shutil.copyfile(snap_path(foreign, 320), snap_path(data_dir, 320))
    got, report = load_both(data_dir)
    assert got == full_replay(data_dir)
    assert (report.snapshot_seq, report.events_replayed) == (None, N)
    assert len(report.skipped_snapshots) == 1


def test_no_snapshot_is_written_below_a_later_one(tmp_path: Path, payloads: list[bytes]) -> None:
    """Regression (defect 5): writing the state of a log that ended below existing snapshots
    renamed those `.stale` and went on. Now it refuses and writes nothing; once the loss is
    accepted (the later snapshots moved to the backup), snapshots are taken again."""
    data_dir, _ = make_with_snapshots(tmp_path / "d", payloads, [300, 350, 390])
    before = {p.name: p.read_bytes() for p in data_dir.snapshots.iterdir()}
    truncate_after(data_dir.log, 250)  # an engine-level cut that did not retire the snapshots
    with pytest.raises(LostRecordsError, match="covers seq 390 but the log ends at seq 250"):
        write_snapshot(data_dir, fold(payloads, 250))
    assert {p.name: p.read_bytes() for p in data_dir.snapshots.iterdir()} == before
    report = accept_loss(data_dir.log, data_dir.snapshots)
    assert len(report.snapshots_moved) == 3
    path = write_snapshot(data_dir, fold(payloads, 250))
    got, load = load_both(data_dir)
    assert got == full_replay(data_dir)
    assert load.snapshot_file == str(path)


def test_random_damage_never_changes_the_state(tmp_path: Path, payloads: list[bytes]) -> None:
    """Random mixes of damage over all kept snapshots: always exactly the full replay."""
    rng = random.Random(2026)
    base, _ = make_with_snapshots(tmp_path / "base", payloads, SNAPS)
    expected = full_replay(base)
    for round_ in range(12):
        data_dir = DataDir.at(tmp_path / f"r{round_}")
        shutil.copytree(base.root, data_dir.root)
        for seq in SNAPS[-3:]:
            if rng.random() < 0.6:
                _damage(snap_path(data_dir, seq), rng.choice(DAMAGE))
        got, report = load_both(data_dir)
        assert got == expected, round_
        if report.snapshot_seq is not None:
            assert report.events_replayed == N - report.snapshot_seq
        else:
            assert report.events_replayed == N
