"""The snapshot policy against a real log and real files."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import anyio

from eventlog import EventLog
from projections import State, encode, encode_state, evolve
from service.layout import DataDir
from service.snapshotter import Snapshotter
from service.state_store import load_state, snapshot_store
from tools.simulation import realistic_history


async def _run_server_like(data_dir: DataDir, events: int, every: int) -> State:
    """Append events one command at a time, folding and snapshotting as the engine will."""
    log = EventLog.open(data_dir.log)
    state = State()
    snapshotter = Snapshotter(data_dir, every=every)
    try:
        for envelope in islice(realistic_history(events, seed=5), events):
            seq = await log.append(encode(envelope))
            evolve(state, seq, envelope)
            if snapshotter.due(state):
                await snapshotter.take(state, log.checkpoint)
        await snapshotter.take(state, log.checkpoint)
    finally:
        log.close()
    return state


def test_snapshots_every_n_events_and_at_shutdown(tmp_path: Path) -> None:
    data_dir = DataDir.at(tmp_path)
    state = anyio.run(_run_server_like, data_dir, 2_350, 500)
    seqs = [seq for seq, _ in snapshot_store(data_dir).files()]
    assert seqs == [1_500, 2_000, 2_350]
    loaded, report = load_state(data_dir)
    assert report.snapshot_seq == 2_350
    assert report.events_replayed == 0
    assert encode_state(loaded) == encode_state(state)


def test_not_due_before_n_events(tmp_path: Path) -> None:
    snapshotter = Snapshotter(DataDir.at(tmp_path), every=10, last_seq=100)
    state = State(last_seq=109)
    assert not snapshotter.due(state)
    state.last_seq = 110
    assert snapshotter.due(state)


def test_checkpoint_must_match_state(tmp_path: Path) -> None:
    data_dir = DataDir.at(tmp_path)

    async def scenario() -> None:
        log = EventLog.open(data_dir.log)
        try:
            await log.append(b"first")
            await log.append(b"second")
            checkpoint = log.checkpoint
        finally:
            log.close()
        snapshotter = Snapshotter(data_dir, every=1)
        try:
            await snapshotter.take(State(last_seq=1), checkpoint)
        except ValueError as err:
            assert "does not match" in str(err)
        else:
            raise AssertionError("a checkpoint of another seq was accepted")

    anyio.run(scenario)
    assert snapshot_store(data_dir).files() == []
