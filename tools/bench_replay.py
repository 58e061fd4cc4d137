"""`rewind bench replay`: how fast state comes back, against a peer measured in the same run.

One realistic history (``tools.simulation.realistic_history``) is generated once and stored
twice, in a rewind log and in the `eventsourcing` library's SQLite recorder, both in files on the
same disk. Then, with nothing else running:

(a) full replay: open the log read-only, read every frame (CRC checked), decode, evolve. This is
    the worst case of a restart, and the bound that snapshots exist to avoid.
(b) snapshot load: the server snapshots every ``SNAPSHOT_EVERY`` events, so the newest snapshot
    sits at most that many events behind the end. It is placed at the worst case, a whole
    interval (or the last started one) behind; ``load_state`` is timed exactly as a restart
    calls it (newest snapshot + tail replay).
(c) the peer: the same payloads as `eventsourcing` ``StoredEvent`` rows in its SQLite
    application recorder, read back in application order through ``select_notifications`` (how
    the library feeds projections), decoded and folded with the same ``projections`` code. Only
    the storage differs, so the ratio says what rewind's log buys over an embedded event store.

Read-only passes (storage only, no decode or evolve) are measured for both stores as well: the
decode + evolve work is shared, and those figures show how much of each total it is.

Setup (generation, appends, inserts) is timed separately and never enters a rate.

Rates are per event, and events are not all equal: a history with more jobs per event (each
job's creation and purge are the costliest folds) replays fewer events per second. The number
of jobs in the history and the full replay's jobs per second are reported too, so that runs
of different histories (another simulation, another catalogue) can be compared fairly.

Every store is read right after it was written, so both are equally warm in the page cache:
this measures CPU cost of recovery, not the disk.
"""

from __future__ import annotations

import asyncio
import importlib
import time
import uuid
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

from eventlog import Checkpoint, EventLog
from projections import Envelope, State, decode, encode, evolve
from service.layout import DataDir
from service.state_store import fewer_collections, load_state, write_snapshot
from tools.simulation import realistic_history

if TYPE_CHECKING:
    from eventsourcing.persistence import ApplicationRecorder

SNAPSHOT_EVERY: Final = 10_000
"""The server's snapshot policy: the newest snapshot is at most this many events old."""
DEFAULT_EVENTS: Final = 1_000_000
DEFAULT_SEED: Final = 20_240_611
APPEND_CHUNK: Final = 4_096
"""Events per append_many / insert_events call: few fsyncs, so setup stays quick."""
PEER_PAGE: Final = 1_000
"""Notifications per select_notifications call. The library's own readers use sections of 10,
which is about half as fast; 1 000 was the fastest size we tried, so the peer gets its best."""
PEER_ORIGINATOR_ID_TYPE: Final = "text"
"""A documented option of the SQLite recorder; it skips a UUID parse per row (the default
"uuid" costs the peer about a quarter of its rate). Again the peer's best, not its default."""
INSTALL_HINT: Final = (
    "`rewind bench replay` measures against the eventsourcing library, which is not installed; "
    "install it with: pip install 'rewind[bench]'"
)


class PeerMissingError(RuntimeError):
    """The peer library is an optional extra (`rewind[bench]`): the CLI runs without it."""


def _peer() -> ModuleType:
    """`eventsourcing.persistence`, imported here only, so every other command (and this
    module) loads without the library."""
    try:
        return importlib.import_module("eventsourcing.persistence")
    except ModuleNotFoundError as err:
        if err.name is None or err.name.partition(".")[0] != "eventsourcing":
            raise
        raise PeerMissingError(INSTALL_HINT) from None


def run(
    events: int = DEFAULT_EVENTS, directory: Path | None = None, seed: int = DEFAULT_SEED
) -> dict[str, Any]:
    """Set up both stores under `directory` (a scratch dir), measure, return the figures.

    Keys are stable (the CLI's --json and the tests rely on them); rates are events/s, durations
    seconds.
    """
    if events < SNAPSHOT_EVERY:
        raise ValueError(f"need at least {SNAPSHOT_EVERY} events to have a snapshot to load")
    peer = _peer()
    scratch = directory if directory is not None else Path.cwd()
    data_dir = DataDir.at(scratch / "rewind")
    snapshot_seq = max(SNAPSHOT_EVERY, (events - 1) // SNAPSHOT_EVERY * SNAPSHOT_EVERY)

    factory = peer.InfrastructureFactory.construct(
        {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(scratch / "eventsourcing.sqlite"),
            "ORIGINATOR_ID_TYPE": PEER_ORIGINATOR_ID_TYPE,
        }
    )
    try:
        recorder = factory.application_recorder()
        setup = _store(
            data_dir,
            recorder,
            peer.StoredEvent,
            events=events,
            seed=seed,
            snapshot_seq=snapshot_seq,
        )

        full_s, full_state = _rewind_full_replay(data_dir)
        rewind_read_s = _rewind_read_only(data_dir)
        snapshot_state, report = load_state(data_dir)
        snapshot_s = report.seconds
        peer_s, peer_state = _peer_replay(recorder)
        peer_read_s = _peer_read_only(recorder)
    finally:
        factory.close()

    if not full_state.last_seq == snapshot_state.last_seq == peer_state.last_seq == events:
        raise RuntimeError(
            f"replays disagree on the end: full {full_state.last_seq}, "
            f"snapshot {snapshot_state.last_seq}, eventsourcing {peer_state.last_seq}"
        )
    full_eps = events / full_s
    # Every job ever created is in the state, or purged and remembered by its tombstone.
    jobs = len(full_state.jobs.by_id) + len(full_state.jobs.purged)
    peer_eps = events / peer_s
    return {
        "events": events,
        "seed": seed,
        "rewind_full_replay_eps": round(full_eps, 1),
        "rewind_full_replay_s": round(full_s, 4),
        "history_jobs": jobs,
        "rewind_full_replay_jobs_per_s": round(jobs / full_s, 1),
        "rewind_read_only_eps": round(events / rewind_read_s, 1),
        "rewind_snapshot_load_s": round(snapshot_s, 4),
        "snapshot_seq": report.snapshot_seq,
        "snapshot_events_replayed": report.events_replayed,
        "full_events_replayed": events,
        "snapshot_speedup": round(full_s / snapshot_s, 2),
        "eventsourcing_sqlite_replay_eps": round(peer_eps, 1),
        "eventsourcing_sqlite_replay_s": round(peer_s, 4),
        "eventsourcing_sqlite_read_only_eps": round(events / peer_read_s, 1),
        "ratio_rewind_vs_eventsourcing": round(full_eps / peer_eps, 2),
        **{name: round(value, 3) for name, value in setup.items()},
    }


def _store(
    data_dir: DataDir,
    recorder: ApplicationRecorder,
    stored_event: Any,
    *,
    events: int,
    seed: int,
    snapshot_seq: int,
) -> dict[str, float]:
    """Write the history to both stores in one pass, and the snapshot the server would hold.

    As the server does, the snapshot carries the writer's checkpoint of its last record, so
    loading skips straight to the tail; the chunk holding `snapshot_seq` is cut there to
    catch that checkpoint. The snapshot's state is folded in memory from the same envelopes
    while they stream by, so (b) never depends on (a) having been right.
    """
    timings = {"setup_generate_s": 0.0, "setup_rewind_append_s": 0.0, "setup_sqlite_insert_s": 0.0}
    state = State()
    checkpoint: Checkpoint | None = None
    originator = f"rewind-history-{uuid.uuid4().hex}"

    async def write_all(log: EventLog) -> None:
        nonlocal checkpoint
        seq = 0
        history = realistic_history(events, seed=seed)
        while True:
            started = time.perf_counter()
            size = min(APPEND_CHUNK, snapshot_seq - seq) if seq < snapshot_seq else APPEND_CHUNK
            chunk: list[bytes] = []
            rows: list[Any] = []
            for envelope in islice(history, size):
                seq += 1
                if seq <= snapshot_seq:
                    evolve(state, seq, envelope)
                payload = encode(envelope)
                chunk.append(payload)
                rows.append(stored_event(originator, seq, _topic(envelope), payload))
            timings["setup_generate_s"] += time.perf_counter() - started
            if not chunk:
                return
            started = time.perf_counter()
            await log.append_many(chunk)
            if seq == snapshot_seq:
                checkpoint = log.checkpoint
            timings["setup_rewind_append_s"] += time.perf_counter() - started
            started = time.perf_counter()
            recorder.insert_events(rows)
            timings["setup_sqlite_insert_s"] += time.perf_counter() - started

    log = EventLog.open(data_dir.log)
    try:
        asyncio.run(write_all(log))
    finally:
        log.close()
    if log.last_seq != events:
        raise RuntimeError(f"log holds {log.last_seq} events, expected {events}")
    if checkpoint is None or checkpoint.seq != snapshot_seq:
        raise RuntimeError(f"no checkpoint of seq {snapshot_seq} to pin the snapshot to")
    started = time.perf_counter()
    write_snapshot(data_dir, state, checkpoint)
    timings["setup_snapshot_write_s"] = time.perf_counter() - started
    return timings


def _topic(envelope: Envelope) -> str:
    """What the library's mapper would store as the topic: where the event's class lives."""
    event_type = type(envelope.event)
    return f"{event_type.__module__}:{event_type.__qualname__}"


def _rewind_full_replay(data_dir: DataDir) -> tuple[float, State]:
    """(a): open + read + CRC + decode + evolve, from seq 1, as a restart without snapshots."""
    started = time.perf_counter()
    log = EventLog.open_readonly(data_dir.log)
    state = State()
    with fewer_collections():  # as load_state replays
        for record in log.read(1):
            evolve(state, record.seq, decode(record.payload))
    return time.perf_counter() - started, state


def _rewind_read_only(data_dir: DataDir) -> float:
    """Open + read + CRC only: the storage share of (a)."""
    started = time.perf_counter()
    log = EventLog.open_readonly(data_dir.log)
    for _ in log.read(1):
        pass
    return time.perf_counter() - started


def _notifications(recorder: ApplicationRecorder) -> Iterator[tuple[int, bytes]]:
    """(seq, payload) in application order, paged the way the library's readers page."""
    start = 1
    while True:
        page = recorder.select_notifications(start, PEER_PAGE)
        if not page:
            return
        for notification in page:
            yield notification.originator_version, notification.state
        start = page[-1].id + 1


def _peer_replay(recorder: ApplicationRecorder) -> tuple[float, State]:
    """(c): select from SQLite + decode + evolve, the same fold as (a)."""
    started = time.perf_counter()
    state = State()
    with fewer_collections():  # the same collector settings as (a), for a fair comparison
        for seq, payload in _notifications(recorder):
            evolve(state, seq, decode(payload))
    return time.perf_counter() - started, state


def _peer_read_only(recorder: ApplicationRecorder) -> float:
    """Select from SQLite only: the storage share of (c)."""
    started = time.perf_counter()
    for _ in _notifications(recorder):
        pass
    return time.perf_counter() - started


def target_lines(result: dict[str, Any]) -> list[str]:
    """The issue's targets against this run, for people; reported, never asserted.

    Timings depend on the machine, so a missed target is news for the closing note, not a
    failure of the command.
    """
    checks = [
        ("(a) full replay >= 300 000 events/s", result["rewind_full_replay_eps"] >= 300_000),
        ("(a) >= 5x eventsourcing SQLite", result["ratio_rewind_vs_eventsourcing"] >= 5),
        (
            "(b) snapshot load <= 0.3 s (set for 1 M events)",
            result["rewind_snapshot_load_s"] <= 0.3,
        ),
        ("(b) snapshot load >= 20x faster than (a)", result["snapshot_speedup"] >= 20),
    ]
    return [f"target {name}: {'met' if met else 'MISSED'}" for name, met in checks]
