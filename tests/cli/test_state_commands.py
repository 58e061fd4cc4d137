"""`rewind state`, `rewind history job`, `rewind snapshot` on a simulated data directory, and the
CLI's error contract: one `rewind: error:` line on stderr, a non-zero exit, never a traceback."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from eventlog import EventLog
from projections import SCHEMA_VERSION, Envelope, decode, encode_state
from projections.plain import as_plain
from projections.redact import redacted
from service.layout import DataDir
from service.state_store import load_state
from tests.cli.conftest import EVENTS, SEED
from tests.service.helpers import (
    FrameInfo,
    assert_one_error_line,
    flip_bit,
    fold,
    frames,
    history,
    make_data_dir,
    run_rewind,
    tree_digest,
)
from tools.state_summary import summary

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def plain(value: Any) -> Any:
    """What a value looks like after a trip through JSON."""
    return msgspec.json.decode(msgspec.json.encode(value))


def state_json(
    data_dir: DataDir, *args: str | int, env: dict[str, str] | None = None, stderr: str = ""
) -> Any:
    result = run_rewind("state", data_dir.root, *args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == stderr
    return msgspec.json.decode(result.stdout)


@pytest.fixture(scope="module")
def envelopes(payloads: list[bytes]) -> list[Envelope]:
    return [decode(p) for p in payloads]


# -- state -------------------------------------------------------------------------------------


def test_state_at_the_end(simulated: DataDir, payloads: list[bytes]) -> None:
    body = state_json(simulated)
    assert body["seq"] == EVENTS
    assert body["state"] == plain(redacted(as_plain(fold(payloads))))
    assert body["load"]["events_replayed"] == EVENTS
    assert body["load"]["snapshot_seq"] is None
    assert body["load"]["tail_damage"] is None
    text = run_rewind("state", simulated.root)
    assert (text.returncode, text.stderr) == (0, "")
    header, *lines = text.stdout.splitlines()
    assert header.startswith(f"state at seq {EVENTS} ({EVENTS} events from seq 1, ")
    assert lines == summary(fold(payloads))
    assert len(lines) < 40, "a screenful, not the whole state"


@pytest.mark.parametrize("at", [0, 1, 37, 1234, EVENTS])
def test_state_at_seq(simulated: DataDir, payloads: list[bytes], at: int) -> None:
    body = state_json(simulated, "--at", at)
    assert body["seq"] == at
    assert body["state"] == plain(redacted(as_plain(fold(payloads, at))))


def test_state_at_a_seq_past_the_end_says_so(simulated: DataDir, payloads: list[bytes]) -> None:
    note = (
        f"rewind: note: seq {EVENTS + 500} is past the log's end; "
        f"showing the state at seq {EVENTS}\n"
    )
    body = state_json(simulated, "--at", EVENTS + 500, stderr=note)
    assert body["seq"] == EVENTS
    assert body["state"] == plain(redacted(as_plain(fold(payloads))))


def _iso(ts: float) -> str:
    """An ISO time at or just after `ts` (ISO has microseconds, `ts` has finer bits)."""
    moment = EPOCH + timedelta(microseconds=math.ceil(ts * 1e6))
    assert moment.timestamp() >= ts
    return moment.isoformat()


def _distinct_points(envelopes: list[Envelope]) -> list[int]:
    """Seqs whose event is stamped clearly earlier than the next one's."""
    picks = [k for k in (2, 300, 1000, 1777) if envelopes[k - 1].ts + 1e-5 < envelopes[k].ts]
    assert len(picks) >= 3
    return picks


def test_state_at_iso_time(
    simulated: DataDir, payloads: list[bytes], envelopes: list[Envelope]
) -> None:
    points = _distinct_points(envelopes)
    for k, spelled in [
        (points[0], _iso(envelopes[points[0] - 1].ts)),
        (points[1], _iso(envelopes[points[1] - 1].ts).replace("+00:00", "Z")),
        # Halfway to the next event is still "at or before": the same seq.
        (points[2], _iso((envelopes[points[2] - 1].ts + envelopes[points[2]].ts) / 2)),
    ]:
        assert state_json(simulated, "--at", spelled)["seq"] == k, spelled
    k = _distinct_points(envelopes)[1]
    body = state_json(simulated, "--at", _iso(envelopes[k - 1].ts))
    assert body["state"] == plain(redacted(as_plain(fold(payloads, k))))
    before_all = _iso(envelopes[0].ts - 3600)
    assert state_json(simulated, "--at", before_all)["seq"] == 0
    assert state_json(simulated, "--at", "2100-01-01T00:00:00+00:00")["seq"] == EVENTS
    # Another zone, same instant.
    k = _distinct_points(envelopes)[2]
    moment = datetime.fromisoformat(_iso(envelopes[k - 1].ts))
    paris = moment.astimezone(datetime.fromisoformat("2000-01-01T00:00:00+01:00").tzinfo)
    assert paris.isoformat().endswith("+01:00")
    assert state_json(simulated, "--at", paris.isoformat())["seq"] == k


def test_state_at_naive_time_is_utc(simulated: DataDir, envelopes: list[Envelope]) -> None:
    k = _distinct_points(envelopes)[2]
    naive = _iso(envelopes[k - 1].ts).removesuffix("+00:00")
    body = state_json(simulated, "--at", naive, env={"TZ": "America/New_York"})
    assert body["seq"] == k


def test_state_job(simulated: DataDir, payloads: list[bytes], envelopes: list[Envelope]) -> None:
    final = fold(payloads)
    job_id = next(iter(final.jobs.by_id))
    body = state_json(simulated, "--job", job_id)
    assert body["seq"] == EVENTS
    assert body["state"] == plain(redacted(as_plain(final.jobs.by_id[job_id])))
    # The same job as it was right after it was created.
    created = next(
        seq
        for seq, env in enumerate(envelopes, start=1)
        if getattr(env.event, "job_id", None) == job_id
    )
    early = state_json(simulated, "--at", created, "--job", job_id)
    assert early["state"] == plain(redacted(as_plain(fold(payloads, created).jobs.by_id[job_id])))
    # Before it existed: an error, one line.
    line = assert_one_error_line(
        run_rewind("state", simulated.root, "--at", created - 1, "--job", job_id)
    )
    assert job_id in line


# -- snapshot ----------------------------------------------------------------------------------


def test_snapshot_then_state_replays_nothing(sim: DataDir, payloads: list[bytes]) -> None:
    result = run_rewind("snapshot", sim.root)
    assert result.returncode == 0, result.stderr
    snap = sim.snapshots / f"{EVENTS:020d}.snap"
    assert result.stdout.strip().startswith(f"snapshot of seq {EVENTS} written to {snap}")
    assert f"; {EVENTS} events replayed)" in result.stdout
    state, report = load_state(sim)
    assert encode_state(state) == encode_state(fold(payloads))
    assert (report.snapshot_seq, report.events_replayed) == (EVENTS, 0)
    assert state_json(sim)["load"]["events_replayed"] == 0
    # Older points ignore it; the log grows past it and only the tail is replayed.
    assert state_json(sim, "--at", 10)["load"]["events_replayed"] == 10
    more = history(EVENTS + 150, SEED)

    async def grow() -> None:
        with EventLog.open(sim.log) as log:
            await log.append_many(more[EVENTS:])

    asyncio.run(grow())
    state, report = load_state(sim)
    assert encode_state(state) == encode_state(fold(more))
    assert (report.snapshot_seq, report.events_replayed) == (EVENTS, 150)
    again = run_rewind("snapshot", sim.root)
    assert again.returncode == 0 and "; 150 events replayed)" in again.stdout
    state, report = load_state(sim)
    assert (report.snapshot_seq, report.events_replayed) == (EVENTS + 150, 0)
    assert encode_state(state) == encode_state(fold(more))


def test_snapshot_of_an_empty_log_is_refused(tmp_path: Path) -> None:
    with EventLog.open(tmp_path / "d" / "log"):
        pass
    line = assert_one_error_line(run_rewind("snapshot", tmp_path / "d"))
    assert "empty" in line
    assert not (tmp_path / "d" / "snapshots").exists()


# -- history -----------------------------------------------------------------------------------


def _direct(envelope: Envelope, job_id: str) -> bool:
    fields = as_plain(envelope.event)
    return fields.get("job_id") == job_id or job_id in fields.get("job_ids", ())


def _busy_job(envelopes: list[Envelope]) -> str:
    """A job whose life left a trail: webhook attempts, a cleanup, a container."""
    callbacks: dict[str, str] = {}
    attempts: dict[str, int] = {}
    for env in envelopes:
        fields = as_plain(env.event)
        if fields["type"] == "callback.due":
            callbacks[fields["callback_id"]] = fields["job_id"]
        elif fields["type"].startswith("callback.attempt") and fields["callback_id"] in callbacks:
            job = callbacks[fields["callback_id"]]
            attempts[job] = attempts.get(job, 0) + 1
    return max(attempts, key=lambda job: (attempts[job], job))


def test_history_job(simulated: DataDir, envelopes: list[Envelope]) -> None:
    job_id = _busy_job(envelopes)
    expected = [seq for seq, env in enumerate(envelopes, start=1) if _direct(env, job_id)]
    assert len(expected) >= 8
    result = run_rewind("history", "job", simulated.root, job_id, "--json")
    assert result.returncode == 0, result.stderr
    rows = [msgspec.json.decode(line) for line in result.stdout.splitlines()]
    seqs = [row["seq"] for row in rows]
    assert seqs == sorted(seqs)
    assert set(expected) <= set(seqs)  # plus what the job owns: see the next test
    for row in rows:
        envelope = envelopes[row["seq"] - 1]
        event = as_plain(envelope.event)
        assert row["type"] == event.pop("type")
        assert row["event"] == event
        assert (row["ts"], row["actor"]) == (envelope.ts, envelope.actor)
    assert rows[0]["type"] == "job.created"
    text = run_rewind("history", "job", simulated.root, job_id)
    assert text.returncode == 0
    lines = text.stdout.splitlines()
    assert [int(line.split()[0]) for line in lines] == seqs
    for line, row in zip(lines, rows, strict=True):
        printed = line.split()[1]
        assert printed.endswith("Z"), "UTC, the zone --at assumes"
        when = datetime.fromisoformat(printed)
        assert when.utcoffset() == timedelta(0)
        assert 0 <= when.timestamp() - row["ts"] < 2e-6
        assert row["type"] in line
    for zone in ("America/New_York", "Asia/Kolkata"):
        elsewhere = run_rewind("history", "job", simulated.root, job_id, env={"TZ": zone})
        assert elsewhere.stdout == text.stdout, f"the machine's zone ({zone}) must not matter"


def test_a_time_printed_by_history_selects_that_event_in_state_at(
    simulated: DataDir, envelopes: list[Envelope]
) -> None:
    """Copying a time from `history` into `--at` gives the state right after that event (or
    after a later one stamped within the same microsecond), never the state before it."""
    job_id = _busy_job(envelopes)
    text = run_rewind("history", "job", simulated.root, job_id, env={"TZ": "Asia/Tokyo"})
    printed = [(int(line.split()[0]), line.split()[1]) for line in text.stdout.splitlines()]
    for seq, when in printed[:: max(1, len(printed) // 4)]:
        moment = datetime.fromisoformat(when).timestamp()
        later = (k for k, env in enumerate(envelopes, start=1) if env.ts > moment)
        expected = next(later, len(envelopes) + 1) - 1
        assert expected >= seq
        got = state_json(simulated, "--at", when, env={"TZ": "America/New_York"})["seq"]
        assert got == expected, (seq, when)


OWNED_KINDS = {
    "callback_id": "callback",
    "path": "path",
    "batch_id": "batch",
    "container_id": "resource",
    "network_id": "resource",
    "resource_id": "resource",  # a container's or a network's id (resource.removal-failed)
}
"""Fields of v2 events naming something a job owns, and what kind of thing each names."""


def _owned_by(job_id: str, envelopes: list[Envelope]) -> list[int]:
    """The oracle: seqs of events naming the job, or naming something an earlier event that
    named the job also named (its webhook, its batch, its workspace or staging path, its
    containers and networks, however a later event spells their ids)."""
    owned: set[tuple[str, str]] = set()
    found = []
    for seq, env in enumerate(envelopes, start=1):
        fields = as_plain(env.event)
        names = {(kind, fields[key]) for key, kind in OWNED_KINDS.items() if key in fields}
        if _direct(env, job_id):
            owned |= names
            found.append(seq)
        elif names & owned:
            found.append(seq)
    return found


def _job_with_a_failed_removal(envelopes: list[Envelope]) -> str:
    """The job owning the first container or network whose removal failed (such an event names
    only `resource_id`)."""
    creators: dict[str, str] = {}
    for env in envelopes:
        fields = as_plain(env.event)
        if fields["type"] in ("container.created", "network.created"):
            creators[fields.get("container_id") or fields["network_id"]] = fields["job_id"]
        elif fields["type"] == "resource.removal-failed":
            return creators[fields["resource_id"]]
    raise AssertionError("the history should hold a failed container or network removal")


@pytest.mark.parametrize("pick", [_busy_job, _job_with_a_failed_removal])
def test_history_job_includes_its_webhooks_and_cleanups(
    simulated: DataDir, envelopes: list[Envelope], pick: Any
) -> None:
    job_id = pick(envelopes)
    expected = _owned_by(job_id, envelopes)
    indirect = [seq for seq in expected if not _direct(envelopes[seq - 1], job_id)]
    assert indirect, "the job should own things that later events name without the job"
    result = run_rewind("history", "job", simulated.root, job_id, "--json")
    assert result.returncode == 0, result.stderr
    got = [msgspec.json.decode(line)["seq"] for line in result.stdout.splitlines()]
    assert got == expected


# -- errors ------------------------------------------------------------------------------------


COMMANDS: list[tuple[str, ...]] = [
    ("log", "verify"),
    ("log", "verify", "--deep"),
    ("log", "dump"),
    ("log", "stat"),
    ("log", "repair", "--truncate-after", "1"),
    ("state",),
    ("state", "--at", "5"),
    ("snapshot",),
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_nonexistent_dir(tmp_path: Path, command: tuple[str, ...]) -> None:
    missing = tmp_path / "nowhere"
    args = [*command[:2], str(missing), *command[2:]] if command[0] == "log" else None
    if args is None:
        args = [command[0], str(missing), *command[1:]]
    line = assert_one_error_line(run_rewind(*args))
    assert str(missing) in line
    assert not missing.exists(), "a read-only tool must not create the directory"


def test_history_of_nonexistent_dir(tmp_path: Path) -> None:
    line = assert_one_error_line(run_rewind("history", "job", tmp_path / "nowhere", "job-1"))
    assert "nowhere" in line


def test_a_plain_file_is_not_a_data_dir(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("hello")
    assert_one_error_line(run_rewind("log", "verify", path))
    assert_one_error_line(run_rewind("state", path))


@pytest.mark.parametrize(
    "at", ["yesterday", "12abc", "-5", "2026-13-01", "1.5", "", "0x10", "five"]
)
def test_bad_at(simulated: DataDir, at: str) -> None:
    line = assert_one_error_line(run_rewind("state", simulated.root, "--at", at))
    assert "--at" in line


def test_bad_at_unicode_digit(simulated: DataDir) -> None:
    assert_one_error_line(run_rewind("state", simulated.root, "--at", "²"))


def test_unknown_job(simulated: DataDir) -> None:
    line = assert_one_error_line(run_rewind("state", simulated.root, "--job", "job-nope"))
    assert "job-nope" in line
    line = assert_one_error_line(run_rewind("history", "job", simulated.root, "job-nope"))
    assert "job-nope" in line


def _jobs_spanning(envelopes: list[Envelope], seq: int) -> str:
    """A job with events naming it both before and after `seq`."""
    seqs: dict[str, list[int]] = {}
    for position, envelope in enumerate(envelopes, start=1):
        job_id = getattr(envelope.event, "job_id", None)
        if isinstance(job_id, str):
            seqs.setdefault(job_id, []).append(position)
    return next(job for job, found in sorted(seqs.items()) if found[0] < seq < found[-1])


def _damage_target(found: list[FrameInfo], position: str) -> tuple[FrameInfo, int]:
    """A record of the newest segment near seq 900 to damage, and the first seq of its write
    batch: the batch's first record (`position="first"`) or one inside it, after its first
    (`"inside"`: the records of the batch before it are then unreadable too, because a batch
    is read whole or not at all)."""
    newest = max(f.segment for f in found)
    firsts = {(f.segment, f.batch_end): f.seq for f in reversed(found)}
    candidates = [
        f
        for f in found[899:]
        if f.segment == newest
        and (firsts[f.segment, f.batch_end] == f.seq) == (position == "first")
    ]
    assert candidates, f"simulate's concurrent appends should leave a record {position} a batch"
    target = candidates[0]
    return target, firsts[target.segment, target.batch_end]


@pytest.mark.parametrize("position", ["first", "inside"])
def test_damage_in_the_newest_segment(
    sim: DataDir, payloads: list[bytes], envelopes: list[Envelope], position: str
) -> None:
    """Whatever needs the records from the damaged write batch on fails (exit 1, one line
    naming file, offset and seq); whatever comes before that batch keeps working, with a
    warning naming the same. The error's hint names the last seq that works."""
    target, start = _damage_target(frames(sim.log), position)
    assert (start == target.seq) == (position == "first") and start > 10
    flip_bit(target.segment, target.offset + 20, 4)
    before = tree_digest(sim.root)
    where = (str(target.segment), f"at offset {target.offset} ", f"seq {target.seq}")
    intact = start - 1

    for args in (["state"], ["state", "--at", str(target.seq + 49)], ["snapshot"]):
        result = run_rewind(args[0], sim.root, *args[1:])
        line = assert_one_error_line(result)
        assert result.returncode == 1, line
        assert all(part in line for part in where), line
    hint = assert_one_error_line(run_rewind("state", sim.root))
    batch = "" if position == "first" else f" (the damaged write batch starts at seq {start})"
    assert hint.endswith(f"seqs before {start} are intact{batch}: try --at {intact}"), hint
    if position == "inside":  # before the damaged record, but in its batch: not readable
        inside = run_rewind("state", sim.root, "--at", target.seq - 1)
        line = assert_one_error_line(inside)
        assert inside.returncode == 1 and all(part in line for part in where), line
        assert line.endswith(f"try --at {intact}"), line

    good = run_rewind("state", sim.root, "--at", intact, "--json")
    assert good.returncode == 0, good.stderr
    body = msgspec.json.decode(good.stdout)
    assert body["seq"] == intact and body["state"] == plain(
        redacted(as_plain(fold(payloads, intact)))
    )
    assert all(part in body["load"]["tail_damage"] for part in where)
    [warning] = good.stderr.splitlines()
    assert warning.startswith("rewind: warning: corrupt log: ")
    assert all(part in warning for part in where)

    dumped = run_rewind("log", "dump", sim.root, "--from", intact - 10, "--to", intact)
    assert dumped.returncode == 0, dumped.stderr
    seqs = [int(line.split()[0]) for line in dumped.stdout.splitlines()]
    assert seqs == list(range(intact - 10, intact + 1))
    [warning] = dumped.stderr.splitlines()
    assert warning.startswith("rewind: warning: ") and all(part in warning for part in where)

    everything = run_rewind("log", "dump", sim.root, "--json")
    assert everything.returncode == 1
    rows = [msgspec.json.decode(line) for line in everything.stdout.splitlines()]
    assert [row["seq"] for row in rows] == list(range(1, start))
    [warning] = everything.stderr.splitlines()
    assert warning.startswith("rewind: warning: ") and all(part in warning for part in where)

    job_id = _jobs_spanning(envelopes, start)
    story = run_rewind("history", "job", sim.root, job_id, "--json")
    assert story.returncode == 1
    seqs = [msgspec.json.decode(line)["seq"] for line in story.stdout.splitlines()]
    assert seqs and max(seqs) < start
    [warning] = story.stderr.splitlines()
    assert warning.startswith("rewind: warning: ") and all(part in warning for part in where)
    assert tree_digest(sim.root) == before


UNDECODABLE = {
    "garbage": b"\x00\x01raw",
    "empty": b"",
    "newer schema": msgspec.msgpack.encode(
        [SCHEMA_VERSION + 1, 1_800_000_000.0, "system", None, {"type": "job.teleported"}]
    ),
}


@pytest.mark.parametrize("kind", list(UNDECODABLE))
def test_an_undecodable_event_is_named_by_seq_and_log(
    tmp_path: Path, envelopes: list[Envelope], kind: str
) -> None:
    good = history(400, SEED)
    data_dir = make_data_dir(tmp_path / "d", [*good[:250], UNDECODABLE[kind], *good[250:]])
    job_id = _jobs_spanning(envelopes[:400], 251)
    for args in (["state"], ["snapshot"], ["history", "job"]):
        extra = [job_id] if args[0] == "history" else []
        result = run_rewind(*args, data_dir.root, *extra)
        line = assert_one_error_line(result)
        assert result.returncode == 1, line
        assert "seq 251" in line and str(data_dir.log) in line, line
    assert not data_dir.snapshots.exists()
    before = run_rewind("state", data_dir.root, "--at", 250, "--json")
    assert before.returncode == 0 and msgspec.json.decode(before.stdout)["seq"] == 250
    deep = run_rewind("log", "verify", data_dir.root, "--deep")
    assert deep.returncode == 1 and "invariant: seq 251: cannot apply event" in deep.stdout
