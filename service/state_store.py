"""Loading state: newest valid snapshot, then the log's tail folded on top.

This is the glue DESIGN.md puts in the service: the engine stores bytes and knows nothing of
events, the projections fold events and know nothing of files. The server, `rewind state` and
`rewind snapshot` all come through here, so they cannot disagree about what the state was.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path

import msgspec

from eventlog import (
    Checkpoint,
    CheckpointMismatchError,
    CorruptLogError,
    EventLog,
    Snapshot,
    SnapshotStore,
)
from projections import (
    Envelope,
    ProjectionError,
    State,
    UnknownEventError,
    decode,
    decode_state,
    encode_state,
    evolve,
)
from service.layout import DataDir

KEEP_SNAPSHOTS = 3
REPLAY_GC_THRESHOLD = 10_000
_UNDECODABLE = (ProjectionError, msgspec.MsgspecError, IndexError)
"""What `decode` raises for bytes that are not an event of this build (IndexError: empty)."""


class EventError(ProjectionError):
    """An intact record (its CRC is right) whose event this build cannot decode.

    Names the seq and the log, so an operator can look at it (`rewind log dump --from SEQ`);
    the decoder's own error is the `__cause__`.
    """

    def __init__(self, log_dir: Path, seq: int, cause: Exception) -> None:
        self.log_dir = log_dir
        self.seq = seq
        super().__init__(f"cannot decode the event at seq {seq} in the log {log_dir}: {cause}")


class UnknownEventAtSeqError(EventError, UnknownEventError):
    """An event written by a newer rewind: still an UnknownEventError for whoever tells the
    two apart (upgrade rewind, rather than repair the log)."""


def _undecodable(log_dir: Path, seq: int, cause: Exception) -> EventError:
    kind = UnknownEventAtSeqError if isinstance(cause, UnknownEventError) else EventError
    return kind(log_dir, seq, cause)


class LoadReport(msgspec.Struct):
    """How a state was obtained; part of the recovery metrics."""

    last_seq: int
    snapshot_seq: int | None = None
    snapshot_file: str | None = None
    skipped_snapshots: list[str] = msgspec.field(default_factory=list)
    events_replayed: int = 0
    seconds: float = 0.0
    tail_damage: str | None = None
    """Damage found in the newest segment, past the seq asked for (the state is intact)."""

    def skip(self, path: Path, reason: str) -> None:
        self.skipped_snapshots.append(f"{path}: {reason}")


@contextmanager
def fewer_collections() -> Iterator[None]:
    """A replay allocates millions of objects that all live on in the state; with Python's
    default settings the cyclic collector scans them again and again (about a tenth of a
    replay's time). Collections are only made rarer, never turned off, and the settings are
    restored afterwards."""
    before = gc.get_threshold()
    gc.set_threshold(REPLAY_GC_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def snapshot_store(data_dir: DataDir) -> SnapshotStore:
    return SnapshotStore(data_dir.snapshots, keep=KEEP_SNAPSHOTS)


def load_state(
    data_dir: DataDir,
    *,
    at: int | None = None,
    log: EventLog | None = None,
    on_record: Callable[[int], None] | None = None,
) -> tuple[State, LoadReport]:
    """The state right after seq `at` (default: the log's end).

    Starts from the newest snapshot at or before that point that decodes at this build's state
    version and whose checkpoint matches this log; the others are reported and skipped, down
    to a full replay from seq 1. Reading starts at the snapshot's checkpoint, so the cost is
    the tail's, not the history's. Damage in the newest segment past `at` does not stop it
    (what is before the damage is intact); it is noted in the report's `tail_damage`.
    `on_record(seq)` sees each event folded, for progress displays.

    A valid snapshot of a seq past the log's end is evidence that acknowledged records are
    gone: LostRecordsError, naming both seqs, whatever `at` asks for (never skipped).
    """
    with fewer_collections():
        return _load_state(data_dir, at, log, on_record)


def _load_state(
    data_dir: DataDir,
    at: int | None,
    log: EventLog | None,
    on_record: Callable[[int], None] | None,
) -> tuple[State, LoadReport]:
    started = time.perf_counter()
    store = snapshot_store(data_dir)
    report = LoadReport(last_seq=0)
    candidates = store.candidates(max_seq=at)
    newest = next(candidates, None)
    if log is not None:
        reader = log
    else:
        reader, newest = _open_reader(data_dir, newest, report)
    end = None if at is None else _end(at, reader, report, store)
    if end is None:
        store.check_end(reader.last_seq)  # durable: open made it so before exposing it
    state, records = State(), None
    for snapshot in chain([newest] if newest else [], candidates):
        try:
            state = decode_state(snapshot.data)
            records = reader.read(snapshot.seq + 1, checkpoint=snapshot.checkpoint)
        except (ProjectionError, msgspec.MsgspecError, CheckpointMismatchError) as err:
            report.skip(snapshot.path, str(err))
            state = State()
            continue
        report.snapshot_seq = snapshot.seq
        report.snapshot_file = str(snapshot.path)
        break
    if end is None or state.last_seq < end:
        # stop right at `end`: asking the reader for one more record would read past it,
        # into damage that does not concern this state
        for record in records if records is not None else reader.read(1):
            if end is not None and record.seq > end:
                break
            try:
                envelope = decode(record.payload)
            except _UNDECODABLE as err:
                raise _undecodable(reader.path, record.seq, err) from err
            evolve(state, record.seq, envelope)
            report.events_replayed += 1
            if on_record is not None:
                on_record(record.seq)
            if record.seq == end:
                break
    report.last_seq = state.last_seq
    report.skipped_snapshots.extend(f"{s.path}: {s.reason}" for s in store.skipped)
    report.seconds = time.perf_counter() - started
    return state, report


def _end(at: int, reader: EventLog, report: LoadReport, store: SnapshotStore) -> int:
    """`at`, or the log's end when that comes first.

    When the newest segment is damaged its end is unknown; `at` stays, and the fold either
    stops there or meets the damage and raises. Otherwise no snapshot may lie past the end.
    """
    try:
        log_end = reader.last_seq
    except CorruptLogError as err:
        report.tail_damage = str(err)
        return at
    store.check_end(log_end)
    return min(at, log_end)


def _open_reader(
    data_dir: DataDir, newest: Snapshot | None, report: LoadReport
) -> tuple[EventLog, Snapshot | None]:
    """Open read-only, from the newest snapshot's checkpoint when it matches this log.

    Returns the snapshot still worth trying: None once its checkpoint proved foreign.
    """
    if newest is not None and newest.checkpoint is not None:
        try:
            return EventLog.open_readonly(data_dir.log, checkpoint=newest.checkpoint), newest
        except CheckpointMismatchError as err:
            report.skip(newest.path, str(err))
            newest = None
    return EventLog.open_readonly(data_dir.log), newest


def write_snapshot(data_dir: DataDir, state: State, checkpoint: Checkpoint | None = None) -> Path:
    """Store `state` as the snapshot of seq `state.last_seq`, at `checkpoint` in the log."""
    return snapshot_store(data_dir).write(state.last_seq, encode_state(state), checkpoint)


def events(log: EventLog, start: int = 1) -> Iterator[tuple[int, Envelope]]:
    """Decoded events of a log, in order."""
    for record in log.read(start):
        try:
            envelope = decode(record.payload)
        except _UNDECODABLE as err:
            raise _undecodable(log.path, record.seq, err) from err
        yield record.seq, envelope


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


_OWNED = {
    "callback_id": "callback",
    "path": "path",
    "container_id": "resource",
    "network_id": "resource",
    "resource_id": "resource",
    "batch_id": "batch",
}
"""Fields naming things a job owns, and the kind of thing each names; later events name only
these (a webhook attempt, a cleanup's completion, a container's removal), not the job. A
container's or network's id comes back as `resource_id` when its removal fails, so ownership
is keyed by kind, not by field name."""


class JobEvents:
    """Tells which events are about one job: those naming it, and those naming what it owns.

    Feed it events in seq order: ownership is learnt from the events that name the job.
    """

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self._owned: dict[tuple[str, str], None] = {}

    def __call__(self, envelope: Envelope) -> bool:
        event = envelope.event
        owned = [
            (kind, value) for name, kind in _OWNED.items() if (value := getattr(event, name, None))
        ]
        if getattr(event, "job_id", None) == self.job_id or self.job_id in getattr(
            event, "job_ids", ()
        ):
            self._owned.update(dict.fromkeys(owned))
            return True
        return any(key in self._owned for key in owned)
