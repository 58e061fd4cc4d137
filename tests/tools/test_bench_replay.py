"""`rewind bench replay` on a small history: the shape of its result, never its timings.

Timings depend on the machine and the load; what must hold anywhere is that every contender
replayed the whole history, and that loading from the snapshot replayed fewer events than a full
replay (otherwise the snapshot figure would measure nothing).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tools import bench_replay
from tools.cli import app

EVENTS = 23_456


def test_result_structure_and_snapshot_replays_less(tmp_path: Path) -> None:
    result = bench_replay.run(EVENTS, tmp_path, seed=3)

    assert result["events"] == EVENTS
    for key in (
        "rewind_full_replay_eps",
        "rewind_full_replay_s",
        "rewind_read_only_eps",
        "rewind_snapshot_load_s",
        "snapshot_speedup",
        "eventsourcing_sqlite_replay_eps",
        "eventsourcing_sqlite_read_only_eps",
        "ratio_rewind_vs_eventsourcing",
    ):
        assert isinstance(result[key], float), key
        assert result[key] > 0, key
    assert isinstance(result["history_jobs"], int) and 0 < result["history_jobs"] < EVENTS
    assert result["rewind_full_replay_jobs_per_s"] == pytest.approx(
        result["history_jobs"] / result["rewind_full_replay_s"], rel=0.01
    )
    every = bench_replay.SNAPSHOT_EVERY
    assert result["snapshot_seq"] == max(every, (EVENTS - 1) // every * every)
    assert result["full_events_replayed"] == EVENTS
    assert result["snapshot_events_replayed"] == EVENTS - result["snapshot_seq"]
    assert result["snapshot_events_replayed"] < result["full_events_replayed"]
    assert len(bench_replay.target_lines(result)) == 4


def test_too_few_events_for_a_snapshot_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least"):
        bench_replay.run(bench_replay.SNAPSHOT_EVERY - 1, tmp_path)


def test_cli_json_is_one_object_and_cleans_up(tmp_path: Path) -> None:
    outcome = CliRunner().invoke(
        app, ["bench", "replay", "--events", "10000", "--json", "--dir", str(tmp_path)]
    )
    assert outcome.exit_code == 0, outcome.output
    assert '"events":10000' in outcome.stdout
    assert list(tmp_path.iterdir()) == []
