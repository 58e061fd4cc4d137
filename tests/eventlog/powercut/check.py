"""Open one power-cut state with the real engine, as a server starts, and say what is wrong.

A server starts from the newest valid snapshot (its checkpoint sets the floor below which the
log may not end) and opens the log as the writer. In a state a power cut can leave, that must
succeed, hold every acknowledged record with its payload, hold nothing that was never written,
keep every group whole, and refuse nothing: no acknowledged byte is damaged in these states.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from eventlog import EventLog, LogError, Record
from eventlog.snapshot import SnapshotStore
from tests.eventlog.helpers import check_self_describing
from tests.eventlog.powercut.crash import State, crash_states
from tests.eventlog.powercut.workload import SEGMENT_BYTES, Run

SCRATCH = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
"""States are written to memory when it can (tmpfs): fsync is free there, and a state's files
only have to exist long enough to be opened."""


@dataclass
class Summary:
    states: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    cut: int = 0
    """States in which open cut a torn last write."""
    from_snapshot: int = 0

    def add(self, state: State, found: list[str]) -> None:
        self.states += 1
        self.problems.extend(f"point {state.point} ({state.how}): {p}" for p in found)


def check_run(run: Run, count: int, seed: int, reopen_every: int = 10) -> Summary:
    """Build `count` states from the run's trace and check each; every `reopen_every`th state
    also takes an append and a second open (the cut is durable and the log writable)."""
    summary = Summary()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=SCRATCH) as scratch:
        for index, state in enumerate(crash_states(run.trace, count, seed)):
            root = Path(scratch) / f"state-{index}"
            state.materialize(root)
            summary.add(state, _check(root, state, run, summary, index % reopen_every == 0))
            shutil.rmtree(root)
    summary.seconds = time.perf_counter() - started
    return summary


def _check(root: Path, state: State, run: Run, summary: Summary, reopen: bool) -> list[str]:
    data = root / "data"
    if not (data / "log").is_dir():
        return [f"no log, but {len(state.acked)} records were acknowledged"] if state.acked else []
    store = SnapshotStore(data / "snapshots")
    snapshot = store.latest()
    checkpoint = snapshot.checkpoint if snapshot is not None else None
    summary.from_snapshot += checkpoint is not None
    try:
        log = EventLog.open(data / "log", segment_bytes=SEGMENT_BYTES, checkpoint=checkpoint)
    except LogError as err:
        return [f"open refused: {err}"]
    with log:
        summary.cut += log.recovery.torn_bytes > 0
        try:
            records = list(log.read())
            store.check_end(log.last_seq)
        except LogError as err:
            return [f"reading refused: {err}"]
        problems = list(_compare(records, state.acked, run.written, log.last_seq))
        if reopen and not problems:
            problems += _append_and_reopen(log, data / "log")
    return problems


def _compare(
    records: list[Record], acked: dict[int, bytes], written: set[bytes], last_seq: int
) -> Iterator[str]:
    if [r.seq for r in records] != list(range(1, len(records) + 1)) or len(records) != last_seq:
        yield f"seqs are not 1..{last_seq}"
        return
    missing = [seq for seq in acked if seq > last_seq]
    if missing:
        yield (
            f"{len(missing)} acknowledged records lost (seqs {min(missing)}..{max(missing)}; "
            f"the log ends at {last_seq})"
        )
    differ = [
        seq
        for seq, payload in acked.items()
        if seq <= last_seq and records[seq - 1].payload != payload
    ]
    if differ:
        yield f"{len(differ)} acknowledged records differ (first: seq {min(differ)})"
    strangers = [r.seq for r in records if r.payload not in written]
    if strangers:
        yield f"{len(strangers)} records were never written (first: seq {strangers[0]})"
    try:
        check_self_describing(records)
    except AssertionError as err:
        yield f"groups: {err}"


def _append_and_reopen(log: EventLog, log_dir: Path) -> list[str]:
    last = log.last_seq

    async def append() -> int:
        return await log.append(b"after the power cut")

    if asyncio.run(append()) != last + 1:
        return ["the first append after the power cut did not get the next seq"]
    log.close()
    with EventLog.open(log_dir, segment_bytes=SEGMENT_BYTES) as again:
        if again.recovery.torn_bytes or again.last_seq != last + 1:
            return [f"second open: {again.recovery}"]
    return []
