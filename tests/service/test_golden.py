"""The golden log (tests/fixtures/golden-v1) written by an old build replays, forever, to the
stored state, byte for byte; read-only tools leave it untouched; and an event from a newer
schema fails loudly and clearly, never silently."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import struct
from pathlib import Path

import msgspec
import pytest

from eventlog import EventLog
from eventlog.segment import list_segments
from projections import (
    SCHEMA_VERSION,
    State,
    UnknownEventError,
    decode,
    decode_state,
    encode_state,
    evolve,
)
from service.layout import DataDir
from service.state_store import load_state, write_snapshot
from tests.service.helpers import ROOT, run_rewind

GOLDEN = ROOT / "tests" / "fixtures" / "golden-v1"
EXPECTED = GOLDEN / "expected-state.msgpack"
EVENTS = 3000
LOG_SHA256 = {
    "00000000000000000001.seg": "0457948fa9e304373185bebdff45895c750f6cf4a5578b3e6d48577061e0ed32",
    "00000000000000001069.seg": "992cc54612a0e0c9d274b71b408b908d200872904b07da0ba319d00a456ec784",
    "00000000000000002155.seg": "aef81dc56a9de796e6cc2a460805a2c38fd8f30200c825559efb68865a095ffe",
}
PAYLOADS_SHA256 = "4be211abeae8a1066c172b7e337fede1d94ca0b4b3b6a170efd0f3a8600ae435"
"""Of `seq u64 | length u32 | payload` for every record: what the v1 build wrote, unchanged by
the re-framing into segment format 2 (see the fixture's README)."""


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture
def golden_copy(tmp_path: Path) -> DataDir:
    target = tmp_path / "golden"
    shutil.copytree(GOLDEN / "log", target / "log")
    return DataDir.at(target)


def test_golden_log_is_the_committed_one() -> None:
    """Guards the rule in the README: the log is never regenerated."""
    found = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (GOLDEN / "log").iterdir()}
    assert found == LOG_SHA256
    assert not (GOLDEN / "snapshots").exists(), "the golden dir must be replayed from seq 1"


def test_golden_payloads_are_what_the_v1_build_wrote() -> None:
    digest = hashlib.sha256()
    with EventLog.open_readonly(GOLDEN / "log") as log:
        for record in log.read(1):
            digest.update(struct.pack("<QI", record.seq, len(record.payload)) + record.payload)
    assert digest.hexdigest() == PAYLOADS_SHA256


def test_golden_log_replays_to_the_stored_state() -> None:
    expected = EXPECTED.read_bytes()
    state = State()
    with EventLog.open_readonly(GOLDEN / "log") as log:
        assert (log.first_seq, log.last_seq) == (1, EVENTS)
        for record in log.read(1):
            assert record.payload[1] == 1, "written at event schema v1"
            envelope = decode(record.payload)
            assert envelope.v == SCHEMA_VERSION, "lifted by the upcasters"
            evolve(state, record.seq, envelope)
    assert encode_state(state) == expected
    assert len(state.jobs.by_id) + len(state.jobs.purged) == 190
    assert state.jobs.count("completed") > 0 and len(state.users.by_id) == 4
    assert state.anomaly_count > 0, "v2 rules flag v1's job-held locks (see upcasters.py)"
    stored = decode_state(expected)
    assert stored.last_seq == EVENTS
    assert encode_state(stored) == expected


def test_golden_log_through_load_state_and_cli_is_exact_and_read_only() -> None:
    before = tree_digest(GOLDEN)
    state, report = load_state(DataDir.at(GOLDEN))
    assert encode_state(state) == EXPECTED.read_bytes()
    assert (report.snapshot_seq, report.events_replayed, report.last_seq) == (None, EVENTS, EVENTS)

    verify = run_rewind("log", "verify", GOLDEN)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert (
        verify.stdout.strip()
        .splitlines()[-1]
        .startswith(f"ok: {EVENTS} records in 3 segments, seq 1..{EVENTS}")
    )
    deep = run_rewind("log", "verify", GOLDEN, "--deep", "--json")
    assert deep.returncode == 1, "v1's lock model breaks v2's rules: --deep must say so"
    body = msgspec.json.decode(deep.stdout)
    assert body["records"] == EVENTS and body["deep"]
    assert any("lock on" in finding for finding in body["deep"])

    cli = run_rewind("state", GOLDEN, "--json")
    assert cli.returncode == 0, cli.stderr
    assert msgspec.json.decode(cli.stdout)["seq"] == EVENTS
    assert tree_digest(GOLDEN) == before, "read-only tools modified the golden fixture"


def test_golden_log_from_a_snapshot_in_an_old_segment(golden_copy: DataDir) -> None:
    """A snapshot whose checkpoint lies in the first segment, then two segments of tail."""
    state = State()
    with EventLog.open_readonly(golden_copy.log) as log:
        for record in log.read(1):
            if record.seq > 1000:
                break
            evolve(state, record.seq, decode(record.payload))
    write_snapshot(golden_copy, state)
    loaded, report = load_state(golden_copy)
    assert encode_state(loaded) == EXPECTED.read_bytes()
    assert (report.snapshot_seq, report.events_replayed) == (1000, EVENTS - 1000)

    result = run_rewind("snapshot", golden_copy.root)
    assert result.returncode == 0, result.stderr
    loaded, report = load_state(golden_copy)
    assert encode_state(loaded) == EXPECTED.read_bytes()
    assert (report.snapshot_seq, report.events_replayed) == (EVENTS, 0)
    assert [s.first_seq for s in list_segments(golden_copy.log)] == [1, 1069, 2155]


def _newer(event: dict[str, object], version: int = SCHEMA_VERSION + 1) -> bytes:
    """An envelope as a newer rewind would write it: [v, ts, actor, request, event]."""
    return msgspec.msgpack.encode([version, 1_800_000_000.0, "system", None, event])


NEWER = {
    "unknown type at a newer schema": _newer({"type": "job.teleported", "job_id": "job-1"}),
    "known type at a newer schema": _newer(
        {"type": "job.cancel-requested", "job_id": "job-00000010", "at": 1.0, "why": "new"}
    ),
    "unknown type at this schema": _newer({"type": "job.teleported"}, version=SCHEMA_VERSION),
}


def _append(data_dir: DataDir, payload: bytes) -> int:
    async def go() -> int:
        with EventLog.open(data_dir.log) as log:
            return await log.append(payload)

    return asyncio.run(go())


@pytest.mark.parametrize("kind", list(NEWER))
def test_event_from_a_newer_schema_fails_loudly(golden_copy: DataDir, kind: str) -> None:
    seq = _append(golden_copy, NEWER[kind])
    assert seq == EVENTS + 1
    with pytest.raises(UnknownEventError) as caught:
        load_state(golden_copy)
    message = str(caught.value)
    assert "job.teleported" in message or "job.cancel-requested" in message
    assert "newer rewind" in message
    # Everything before it is still readable.
    state, _ = load_state(golden_copy, at=EVENTS)
    assert encode_state(state) == EXPECTED.read_bytes()

    result = run_rewind("state", golden_copy.root)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rewind: error: ")
    assert "newer rewind" in lines[0]

    verify = run_rewind("log", "verify", golden_copy.root, "--deep")
    assert verify.returncode == 1
    assert f"seq {EVENTS + 1}: cannot apply event" in verify.stdout
    plain = run_rewind("log", "verify", golden_copy.root)
    assert plain.returncode == 0, "the frames themselves are intact"
