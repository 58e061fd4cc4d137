"""`rewind simulate`, `rewind log verify|dump|stat`, run as the real console script."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import msgspec
import pytest

from eventlog import EventLog
from projections import decode, encode
from projections.envelope import make
from projections.events import JobCompleted
from projections.plain import as_plain
from service.layout import DataDir
from tests.cli.conftest import EVENTS
from tests.service.helpers import (
    FRAME_HEADER,
    REWIND,
    assert_one_error_line,
    flip_bit,
    frames,
    history,
    make_data_dir,
    plan_groups,
    run_rewind,
    tree_digest,
)

SEGMENT = "00000000000000000001.seg"


def test_simulate_writes_exactly_the_seeded_history(
    simulated: DataDir, payloads: list[bytes]
) -> None:
    with EventLog.open_readonly(simulated.log) as log:
        assert [r.payload for r in log.read(1)] == payloads
    again = run_rewind("simulate", simulated.root, "--events", 5)
    line = assert_one_error_line(again)
    assert f"already holds {EVENTS} events" in line


# -- verify ------------------------------------------------------------------------------------


def test_verify_healthy(simulated: DataDir) -> None:
    before = tree_digest(simulated.root)
    size = (simulated.log / SEGMENT).stat().st_size
    result = run_rewind("log", "verify", simulated.root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines() == [
        f"ok: {EVENTS} records in 1 segments, seq 1..{EVENTS}, {size} bytes"
    ]
    assert result.stderr == ""
    # DIR may also be the log directory itself.
    direct = run_rewind("log", "verify", simulated.log)
    assert direct.returncode == 0 and direct.stdout == result.stdout
    as_json = run_rewind("log", "verify", simulated.root, "--json")
    assert as_json.returncode == 0
    body = msgspec.json.decode(as_json.stdout)
    assert body["healthy"] is True
    assert (body["records"], body["first_seq"], body["last_seq"]) == (EVENTS, 1, EVENTS)
    assert body["bytes"] == size
    assert body["damage"] == []
    assert "deep" not in body, "deep findings are reported only when --deep ran"
    deep = run_rewind("log", "verify", simulated.root, "--deep", "--json")
    assert deep.returncode == 0
    deep_body = msgspec.json.decode(deep.stdout)
    assert deep_body["deep"] == [] and deep_body["healthy"] is True
    assert [Path(s["file"]).name for s in body["segments"]] == [SEGMENT]
    assert tree_digest(simulated.root) == before, "verify must never modify anything"


@pytest.mark.parametrize(
    ("target", "where"),
    [(1, "payload"), (777, "payload"), (777, "seq field"), (-1, "length field")],
)
def test_verify_bit_flip_mid_segment(sim: DataDir, target: int, where: str) -> None:
    found = frames(sim.log)
    if target == -1:  # the last record before the last write batch: damage, not a torn write
        target = next(f.seq for f in found if f.batch_end == found[-1].batch_end) - 1
    frame = found[target - 1]
    assert frame.seq == target
    offset = {
        "payload": frame.offset + FRAME_HEADER.size + frame.length // 2,
        "seq field": frame.offset + 8,
        "length field": frame.offset + 1,
    }[where]
    flip_bit(sim.log / SEGMENT, offset, 2)
    before = tree_digest(sim.root)
    result = run_rewind("log", "verify", sim.root)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    damage = [line for line in lines if line.startswith("damage: ")]
    assert len(damage) == 1, lines
    assert str(sim.log / SEGMENT) in damage[0]
    assert f"at offset {frame.offset} " in damage[0]
    assert f"(seq {target})" in damage[0]
    assert lines[-1].startswith("DAMAGED: ")
    as_json = run_rewind("log", "verify", sim.root, "--json")
    assert as_json.returncode == 1
    body = msgspec.json.decode(as_json.stdout)
    assert body["healthy"] is False
    [found] = body["damage"]
    assert (found["file"], found["offset"], found["seq"]) == (
        str(sim.log / SEGMENT),
        frame.offset,
        target,
    )
    assert found["fatal"] is True
    assert tree_digest(sim.root) == before


@pytest.mark.parametrize("cut", [1, 5, 17])
def test_verify_torn_tail_is_a_note(sim: DataDir, cut: int) -> None:
    """A torn last write (here: its last record's end and its commit frame never reached the
    disk) is a note: the whole write batch is cut at the next open, the bytes kept."""
    path = sim.log / SEGMENT
    found = frames(sim.log)
    end = found[-1]
    size = end.offset + FRAME_HEADER.size + end.length  # where the records end
    torn_batch = [f for f in found if f.batch_end == end.batch_end]
    kept = torn_batch[0].seq - 1
    log_end = found[kept - 1].batch_end  # the commit frame closing the batch before it
    os.truncate(path, size - cut)
    result = run_rewind("log", "verify", sim.root)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    notes = [line for line in lines if line.startswith("note: torn tail")]
    assert len(notes) == 1, lines
    assert str(path) in notes[0] and f"(seq {kept + 1})" in notes[0]
    assert lines[-1].startswith(f"ok: {kept} records")
    as_json = msgspec.json.decode(run_rewind("log", "verify", sim.root, "--json").stdout)
    assert as_json["healthy"] is True and as_json["records"] == kept
    [torn] = as_json["damage"]
    assert (torn["kind"], torn["seq"], torn["fatal"]) == ("torn tail", kept + 1, False)
    assert torn["offset"] == log_end
    assert path.stat().st_size == size - cut, "verify must not cut the tail itself"
    # The next writer's open cuts exactly the torn batch, and keeps the bytes.
    with EventLog.open(sim.log) as log:
        assert log.last_seq == kept
        assert log.recovery.torn_bytes == size - cut - log_end
    clean = run_rewind("log", "verify", sim.root)
    assert clean.returncode == 0 and "note:" not in clean.stdout


def _append_events(data_dir: DataDir, payloads: list[bytes]) -> None:
    async def go() -> None:
        with EventLog.open(data_dir.log) as log:
            for payload in payloads:
                await log.append(payload)

    asyncio.run(go())


def test_verify_deep_catches_an_invariant_violation(sim: DataDir) -> None:
    assert run_rewind("log", "verify", sim.root, "--deep").returncode == 0
    ghost = JobCompleted(job_id="job-does-not-exist", at=1_800_000_000.0)
    _append_events(sim, [encode(make(ghost, ts=1_800_000_000.0, actor="system"))])
    shallow = run_rewind("log", "verify", sim.root)
    assert shallow.returncode == 0, "the frames are intact; only --deep can tell"
    deep = run_rewind("log", "verify", sim.root, "--deep")
    assert deep.returncode == 1
    findings = [line for line in deep.stdout.splitlines() if line.startswith("invariant: ")]
    assert findings, deep.stdout
    assert all(line.startswith(f"invariant: seq {EVENTS + 1}: ") for line in findings)
    assert any("job-does-not-exist" in line for line in findings)
    assert deep.stdout.strip().splitlines()[-1].startswith("DAMAGED: ")
    as_json = run_rewind("log", "verify", sim.root, "--deep", "--json")
    assert as_json.returncode == 1
    body = msgspec.json.decode(as_json.stdout)
    assert body["healthy"] is False, "deep findings count toward health, as the exit code says"
    assert body["damage"] == []
    assert body["deep"] and all(p.startswith(f"seq {EVENTS + 1}: ") for p in body["deep"])
    shallow_json = msgspec.json.decode(run_rewind("log", "verify", sim.root, "--json").stdout)
    assert shallow_json["healthy"] is True and "deep" not in shallow_json


def test_verify_names_damage_in_an_older_segment(tmp_path: Path) -> None:
    payloads = history(300, 4)
    data_dir = make_data_dir(tmp_path / "d", payloads, segment_bytes=4096)
    found = frames(data_dir.log)
    segments = sorted({f.segment for f in found})
    assert len(segments) >= 3
    victim = [f for f in found if f.segment == segments[1]][3]
    flip_bit(victim.segment, victim.offset + FRAME_HEADER.size, 0)
    result = run_rewind("log", "verify", data_dir.root)
    assert result.returncode == 1
    damage = next(line for line in result.stdout.splitlines() if line.startswith("damage: "))
    assert str(victim.segment) in damage
    assert f"at offset {victim.offset} " in damage and f"(seq {victim.seq})" in damage
    # Opening refuses too, naming the same place, and `rewind state` says so in one line.
    line = assert_one_error_line(run_rewind("state", data_dir.root))
    assert str(victim.segment) in line and f"seq {victim.seq}" in line


# -- dump --------------------------------------------------------------------------------------


def test_dump_range_text_and_json(simulated: DataDir, payloads: list[bytes]) -> None:
    text = run_rewind("log", "dump", simulated.root, "--from", 100, "--to", 140)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert len(lines) == 41
    for seq, line in zip(range(100, 141), lines, strict=True):
        envelope = decode(payloads[seq - 1])
        tag = as_plain(envelope.event)["type"]
        parts = line.split()
        assert parts[0] == str(seq)
        assert parts[1] == f"{len(payloads[seq - 1])}B"
        assert parts[2] == tag

    as_json = run_rewind("log", "dump", simulated.root, "--from", 1990, "--json")
    assert as_json.returncode == 0
    rows = [msgspec.json.decode(line) for line in as_json.stdout.splitlines()]
    assert [row["seq"] for row in rows] == list(range(1990, EVENTS + 1))
    for row in rows:
        envelope = decode(payloads[row["seq"] - 1])
        event = as_plain(envelope.event)
        assert row["type"] == event.pop("type")
        assert row["event"] == event
        assert row["ts"] == envelope.ts and row["actor"] == envelope.actor
        assert row["size"] == len(payloads[row["seq"] - 1])


def test_dump_edges(simulated: DataDir) -> None:
    past = run_rewind("log", "dump", simulated.root, "--from", EVENTS + 1)
    assert (past.returncode, past.stdout) == (0, "")
    one = run_rewind("log", "dump", simulated.root, "--from", 7, "--to", 7, "--json")
    assert [msgspec.json.decode(line)["seq"] for line in one.stdout.splitlines()] == [7]
    assert past.stderr == f"rewind: note: the log holds no record from seq {EVENTS + 1} on\n"
    empty = run_rewind("log", "dump", simulated.root, "--from", 10, "--to", 5)
    assert (empty.returncode, empty.stdout) == (0, "")
    assert empty.stderr == "rewind: note: --to 5 is before --from 10: nothing to dump\n"
    beyond = run_rewind("log", "dump", simulated.root, "--from", EVENTS - 1, "--to", EVENTS + 9)
    assert beyond.returncode == 0
    assert [int(line.split()[0]) for line in beyond.stdout.splitlines()] == [EVENTS - 1, EVENTS]
    assert beyond.stderr == (
        f"rewind: note: the log ends at seq {EVENTS}, before --to {EVENTS + 9}\n"
    )
    exact = run_rewind("log", "dump", simulated.root, "--from", EVENTS, "--to", EVENTS)
    assert (exact.returncode, exact.stderr) == (0, ""), "a range inside the log needs no note"


def test_dump_shows_undecodable_payloads_as_hex(tmp_path: Path) -> None:
    data_dir = make_data_dir(tmp_path / "d", [b"\x00\x01raw", *history(3, 1)])
    result = run_rewind("log", "dump", data_dir.root, "--to", 1, "--json")
    assert result.returncode == 0, result.stderr
    row = msgspec.json.decode(result.stdout)
    assert row["hex"] == b"\x00\x01raw".hex() and "undecodable" in row


# -- stat --------------------------------------------------------------------------------------


def test_stat_multi_segment(tmp_path: Path) -> None:
    import random

    payloads = history(500, 8)
    data_dir = make_data_dir(
        tmp_path / "d", payloads, groups=plan_groups(500, random.Random(1)), segment_bytes=8192
    )
    found = frames(data_dir.log)
    by_segment: dict[str, list[int]] = {}
    for frame in found:
        by_segment.setdefault(frame.segment.name, []).append(frame.seq)
    assert len(by_segment) >= 4
    as_json = run_rewind("log", "stat", data_dir.root, "--json")
    assert as_json.returncode == 0, as_json.stderr
    body = msgspec.json.decode(as_json.stdout)
    assert (body["healthy"], body["damage"], body["records"]) == (True, [], 500)
    assert (body["first_seq"], body["last_seq"]) == (1, 500)
    rows = body["segments"]
    assert [Path(r["file"]).name for r in rows] == sorted(by_segment)
    for row in rows:
        seqs = by_segment[Path(row["file"]).name]
        assert (row["first_seq"], row["last_seq"], row["records"]) == (
            seqs[0],
            seqs[-1],
            len(seqs),
        )
        assert row["bytes"] == Path(row["file"]).stat().st_size
    text = run_rewind("log", "stat", data_dir.root)
    assert text.returncode == 0
    for name in by_segment:
        assert name in text.stdout
    total = sum(Path(r["file"]).stat().st_size for r in rows)
    assert text.stdout.strip().splitlines()[-1] == f"500 records, {total} bytes"


def test_verify_damage_line_is_one_line_without_a_terminal(tmp_path: Path) -> None:
    deep = tmp_path / ("a-rather-long-directory-name-for-a-data-dir" * 2)
    data_dir = make_data_dir(deep, history(50, 3))
    target = frames(data_dir.log)[20]
    flip_bit(target.segment, target.offset + FRAME_HEADER.size + 3, 1)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    result = subprocess.run(
        [str(REWIND), "log", "verify", str(data_dir.root)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    damage = [line for line in result.stdout.splitlines() if line.startswith("damage: ")]
    assert len(damage) == 1
    assert f"at offset {target.offset} (seq {target.seq})" in damage[0], result.stdout
