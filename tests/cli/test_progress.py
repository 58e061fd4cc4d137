"""Progress bars by records, on a terminal only.

The bar counts records (seqs), so its last frame reads `N/N records`; the former bar counted
bytes in 64 MiB steps and never showed a record count. Without a terminal nothing is drawn:
the other CLI tests assert an empty stderr for the same commands.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.layout import DataDir
from tests.cli.conftest import EVENTS
from tests.cli.terminal import run_on_terminal
from tests.service.helpers import run_rewind

DIR = "{dir}"


def _untimed(text: str) -> str:
    """`state` says how long loading took; that is the only part that may differ."""
    return re.sub(r"\d+\.\d+ s\)", "s)", text)


@pytest.mark.parametrize(
    ("command", "label"),
    [
        (("log", "verify", DIR), "verifying"),
        (("log", "verify", DIR, "--deep"), "verifying"),
        (("log", "stat", DIR), "reading"),
        (("state", DIR), "replaying"),
        (("history", "job", DIR, "job-00000003"), "reading"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else value,
)
def test_read_commands_show_a_bar_by_records(
    simulated: DataDir, command: tuple[str, ...], label: str
) -> None:
    args = [simulated.root if arg == DIR else arg for arg in command]
    run = run_on_terminal(*args)
    assert run.returncode == 0, run.terminal
    assert label in run.text
    assert f"{EVENTS}/{EVENTS} records" in run.text, run.terminal
    piped = run_rewind(*args)
    assert (piped.returncode, piped.stderr) == (0, ""), "no bar without a terminal"
    assert _untimed(piped.stdout) == _untimed(run.stdout), "the bar goes to stderr only"


def test_state_at_a_seq_counts_up_to_it(simulated: DataDir) -> None:
    run = run_on_terminal("state", simulated.root, "--at", 1234)
    assert run.returncode == 0, run.terminal
    assert "1234/1234 records" in run.text


def test_simulate_shows_a_bar(tmp_path: Path) -> None:
    run = run_on_terminal("simulate", tmp_path / "d", "--events", 3000)
    assert run.returncode == 0, run.terminal
    assert "appending" in run.text and "3000/3000 records" in run.text
    assert run.stdout.startswith("appended 3000 events")


def test_the_end_comes_from_the_newest_snapshot_checkpoint(sim: DataDir) -> None:
    """With a snapshot, the bar's end is found by scanning only the events after it: the same
    end as a scan from the segment's start."""
    assert run_rewind("snapshot", sim.root).returncode == 0
    grown = run_on_terminal("log", "verify", sim.root)
    assert grown.returncode == 0 and f"{EVENTS}/{EVENTS} records" in grown.text
    state = run_on_terminal("state", sim.root, "--at", EVENTS)
    assert state.returncode == 0, state.text
    assert "replaying" in state.text and f"/{EVENTS} records" in state.text
