"""The CLI as an operator meets it: which directory DIR means, exit codes, closed pipes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from service.layout import DataDir, resolve, resolve_new
from tests.cli.conftest import EVENTS
from tests.service.helpers import (
    FRAME_HEADER,
    REWIND,
    ROOT,
    assert_one_error_line,
    flip_bit,
    frames,
    history,
    make_data_dir,
    run_rewind,
)


def _rewind_in(cwd: Path, *args: str | Path | int) -> subprocess.CompletedProcess[str]:
    """The console script run from `cwd`, with DIR given relative to it."""
    return subprocess.run(
        [str(REWIND), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "1000"},
    )


# -- DIR ---------------------------------------------------------------------------------------


def test_snapshot_dot_inside_the_log_dir_writes_to_the_data_dir(sim: DataDir) -> None:
    result = _rewind_in(sim.log, "snapshot", ".")
    assert result.returncode == 0, result.stderr
    written = sim.snapshots / f"{EVENTS:020d}.snap"
    assert written.is_file() and str(written) in result.stdout
    assert not (sim.log / "snapshots").exists()
    # ... and every reader run from there finds the same snapshot.
    state = _rewind_in(sim.log, "state", ".", "--json")
    assert msgspec.json.decode(state.stdout)["load"]["snapshot_seq"] == EVENTS
    dotted = _rewind_in(sim.log / "..", "state", "log/.", "--json")
    assert msgspec.json.decode(dotted.stdout)["load"]["snapshot_seq"] == EVENTS


def test_simulate_into_a_log_dir_never_nests_another(tmp_path: Path) -> None:
    fresh = run_rewind("simulate", tmp_path / "a" / "log", "--events", 50)
    assert fresh.returncode == 0, fresh.stderr
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["log"]
    assert not (tmp_path / "a" / "log" / "log").exists()
    assert any(p.suffix == ".seg" for p in (tmp_path / "a" / "log").iterdir())
    # An existing log dir given as `.`: its data dir is its parent, and the log is refused as
    # not empty rather than a new one made inside it.
    again = _rewind_in(tmp_path / "a" / "log", "simulate", ".", "--events", 5)
    line = assert_one_error_line(again)
    assert "already holds 50 events" in line
    assert not (tmp_path / "a" / "log" / "log").exists()
    plain = run_rewind("simulate", tmp_path / "b", "--events", 5)
    assert plain.returncode == 0 and (tmp_path / "b" / "log").is_dir()


@pytest.mark.parametrize(
    ("inside", "spelling"),
    [
        ("data", "."),
        ("data", "./"),
        ("data", "log"),
        ("data", "log/."),
        ("data", "log/.."),
        ("data", "../data"),
        ("log", "."),
        ("log", ".."),
        ("log", "../log"),
        ("log", "../../data/log/"),
    ],
)
def test_resolve_by_absolute_path(tmp_path: Path, inside: str, spelling: str) -> None:
    data = make_data_dir(tmp_path / "data", history(5))
    cwd = Path.cwd()
    os.chdir(data.root if inside == "data" else data.log)
    try:
        where = resolve(Path(spelling))
    finally:
        os.chdir(cwd)
    assert where == DataDir(data.root, data.log)


def test_resolve_new_names(tmp_path: Path) -> None:
    assert resolve_new(tmp_path / "d") == DataDir.at(tmp_path / "d")
    assert resolve_new(tmp_path / "d" / "log") == DataDir(tmp_path / "d", tmp_path / "d" / "log")
    data = make_data_dir(tmp_path / "e", history(3))
    assert resolve_new(data.root) == data and resolve_new(data.log) == data


# -- exit codes --------------------------------------------------------------------------------


def test_help_documents_the_exit_codes() -> None:
    for args in ([], ["log"], ["state"], ["log", "verify"], ["history"]):
        helped = run_rewind(*args, "--help")
        assert helped.returncode == 0
        text = " ".join(helped.stdout.split())
        assert "Exit codes: 0 ok; 1 damage found" in text, args
        assert "2 usage or operational error; 141 output closed early" in text, args


def test_usage_errors_exit_2_damage_exits_1(sim: DataDir) -> None:
    assert run_rewind("log", "dump", sim.root, "--from", "x").returncode == 2
    assert run_rewind("state", sim.root, "--bogus").returncode == 2
    assert run_rewind().returncode == 2
    assert run_rewind("log", "verify", sim.root / "nowhere").returncode == 2
    target = frames(sim.log)[100]
    flip_bit(target.segment, target.offset + FRAME_HEADER.size + 1, 3)
    for args in (("log", "verify"), ("log", "stat"), ("log", "dump")):
        assert run_rewind(*args, sim.root).returncode == 1, args
    assert run_rewind("state", sim.root).returncode == 1


def test_stat_reports_damage_like_verify(tmp_path: Path) -> None:
    data_dir = make_data_dir(tmp_path / "d", history(300, 4), segment_bytes=4096)
    found = frames(data_dir.log)
    segments = sorted({f.segment for f in found})
    victim = [f for f in found if f.segment == segments[1]][2]
    flip_bit(victim.segment, victim.offset + FRAME_HEADER.size, 0)
    text = run_rewind("log", "stat", data_dir.root)
    assert text.returncode == 1, text.stdout
    damage = [line for line in text.stdout.splitlines() if line.startswith("damage: ")]
    assert str(victim.segment) in damage[0] and f"(seq {victim.seq})" in damage[0]
    assert "DAMAGED" in text.stdout.splitlines()[-1]
    as_json = run_rewind("log", "stat", data_dir.root, "--json")
    assert as_json.returncode == 1
    body = msgspec.json.decode(as_json.stdout)
    assert body["healthy"] is False
    first = body["damage"][0]
    assert (first["file"], first["seq"], first["fatal"]) == (str(victim.segment), victim.seq, True)
    verify = msgspec.json.decode(run_rewind("log", "verify", data_dir.root, "--json").stdout)
    assert body == verify, "stat and verify agree on everything, JSON shape included"


# -- closed pipes ------------------------------------------------------------------------------


def _read_a_line_and_close(args: list[str], entry: list[str] | None = None) -> tuple[int, str]:
    """Run a command whose output overflows the pipe, read one line, close our end."""
    process = subprocess.Popen(
        [*(entry or [str(REWIND)]), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read().decode()
    return process.wait(timeout=60), stderr


@pytest.mark.parametrize("json", [False, True], ids=["text", "json"])
def test_a_closed_pipe_exits_quietly(simulated: DataDir, json: bool) -> None:
    """`rewind log dump D | head`: the dump (200 KB, more than a pipe holds) meets a closed
    pipe after the first line, and stops without a word."""
    code, stderr = _read_a_line_and_close(
        ["log", "dump", str(simulated.root), *(["--json"] if json else [])]
    )
    assert (code, stderr) == (141, "")


def test_the_closed_pipe_check_catches_an_unguarded_entry_point(simulated: DataDir) -> None:
    """The same check against typer's own entry point (no stdout guard), which reports a
    closed pipe as exit 1, the code for damage: the test above has teeth."""
    unguarded = [sys.executable, "-c", "from tools.cli import app; app()"]
    code, _ = _read_a_line_and_close(["log", "dump", str(simulated.root)], unguarded)
    assert code == 1
