"""Loading state: newest valid snapshot, then the log's tail folded on top.

This is the glue DESIGN.md puts in the service: the engine stores bytes and knows nothing of
events, the projections fold events and know nothing of files. The server, `rewind state` and
`rewind snapshot` all come through here, so they cannot disagree about what the state was.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

from eventlog import EventLog
from eventlog.snapshot import SnapshotStore
from projections import (
    Envelope,
    ProjectionError,
    State,
    decode,
    decode_state,
    encode_state,
    evolve,
)
from service.layout import DataDir

KEEP_SNAPSHOTS = 3


class LoadReport(msgspec.Struct):
    """How a state was obtained; part of the recovery metrics."""

    last_seq: int
    snapshot_seq: int | None = None
    snapshot_file: str | None = None
    skipped_snapshots: list[str] = msgspec.field(default_factory=list)
    events_replayed: int = 0
    seconds: float = 0.0


def snapshot_store(data_dir: DataDir) -> SnapshotStore:
    return SnapshotStore(data_dir.snapshots, keep=KEEP_SNAPSHOTS)


def load_state(
    data_dir: DataDir, *, at: int | None = None, log: EventLog | None = None
) -> tuple[State, LoadReport]:
    """The state right after seq `at` (default: the log's end).

    Uses the newest snapshot at or before that point that decodes at this build's state version;
    the others are reported and skipped, down to a full replay from seq 1.
    """
    started = time.perf_counter()
    reader = log if log is not None else EventLog.open_readonly(data_dir.log)
    end = reader.last_seq if at is None else min(at, reader.last_seq)
    store = snapshot_store(data_dir)
    state, report = _from_snapshot(store, end)
    for record in reader.read(state.last_seq + 1):
        if record.seq > end:
            break
        evolve(state, record.seq, decode(record.payload))
        report.events_replayed += 1
    report.last_seq = state.last_seq
    report.skipped_snapshots.extend(f"{s.path}: {s.reason}" for s in store.skipped)
    report.seconds = time.perf_counter() - started
    return state, report


def _from_snapshot(store: SnapshotStore, end: int) -> tuple[State, LoadReport]:
    report = LoadReport(last_seq=0)
    for snapshot in store.candidates(max_seq=end):
        try:
            state = decode_state(snapshot.data)
        except (ProjectionError, msgspec.MsgspecError) as err:
            report.skipped_snapshots.append(f"{snapshot.path}: {err}")
            continue
        if state.last_seq != snapshot.seq:
            report.skipped_snapshots.append(
                f"{snapshot.path}: holds state at seq {state.last_seq}, not {snapshot.seq}"
            )
            continue
        report.snapshot_seq = snapshot.seq
        report.snapshot_file = str(snapshot.path)
        return state, report
    return State(), report


def write_snapshot(data_dir: DataDir, state: State) -> Path:
    """Store `state` as the snapshot of seq `state.last_seq`."""
    return snapshot_store(data_dir).write(state.last_seq, encode_state(state))


def events(log: EventLog, start: int = 1) -> Iterator[tuple[int, Envelope]]:
    """Decoded events of a log, in order."""
    for record in log.read(start):
        yield record.seq, decode(record.payload)


def seq_at_time(log: EventLog, when: float) -> int:
    """Seq of the last event at or before wall-clock `when`.

    Wall clocks can step backwards, and seq is the only order: this is the seq just before the
    first event stamped later than `when`.
    """
    last = 0
    for seq, envelope in events(log):
        if envelope.ts > when:
            break
        last = seq
    return last


def mentions_job(envelope: Envelope, job_id: str) -> bool:
    event = envelope.event
    return getattr(event, "job_id", None) == job_id or job_id in getattr(event, "job_ids", ())
