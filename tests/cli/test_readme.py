"""The README's promises, run: the tour's commands and outputs, the command table, the JSON
shapes and the exit codes. A README that drifts from the CLI fails here."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import pytest
from typer.models import CommandInfo

from service.layout import DataDir
from tests.service.helpers import REWIND, ROOT, run_rewind
from tools import exits
from tools.cli import app

README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


class Step(NamedTuple):
    command: str
    inline: str
    """What an inline `# ...` comment says the output contains."""
    expected: list[str]
    """The `# ...` lines after the command: what it prints."""


def _tour() -> list[Step]:
    steps: list[Step] = []
    for block in re.findall(r"```sh\n(.*?)```", _section("The history, offline"), re.S):
        for line in block.splitlines():
            if line.startswith(".venv/bin/rewind"):
                command, _, inline = line.partition("   # ")
                steps.append(Step(command.strip(), inline.strip(), []))
            elif line.startswith("# "):
                steps[-1].expected.append(line.removeprefix("# "))
    return steps


def _pattern(expected: str) -> re.Pattern[str]:
    """An expected line as a regex: `...` stands for anything, timings may differ."""
    escaped = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.compile(re.sub(r"\d+\\\.\d+\\ s", r"[\\d.]+\\ s", escaped))


def test_the_tour_runs_as_written(tmp_path: Path) -> None:
    steps = _tour()
    assert len(steps) >= 12
    places = {"/tmp/tour": str(tmp_path / "tour"), "/tmp/crashed": str(tmp_path / "crashed")}
    for step in steps:
        command = step.command.replace(".venv/bin/rewind", str(REWIND))
        for name, place in places.items():
            command = command.replace(name, place)
        # The kill's timing only decides how far the writer gets. Here it waits for the first
        # segment (a loaded machine may take seconds to start the writer), then a little, so
        # the deep verify after it stays quick.
        command = command.replace(
            "sleep 2",
            f"until ls {places['/tmp/crashed']}/log/*.seg; do sleep 0.1; done; sleep 0.5",
        )
        result = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {command}"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=tmp_path,
            env={**os.environ, "COLUMNS": "1000"},
        )
        output = (result.stdout + result.stderr).splitlines()
        if step.expected and step.expected[0].startswith("rewind: error: "):
            assert result.returncode == exits.ERROR, (step.command, result.stderr)
            assert result.stderr.splitlines() == step.expected
            continue
        allowed = {exits.OK, exits.CLOSED_PIPE} if "| head" in command else {exits.OK}
        assert result.returncode in allowed, (step.command, result.stderr)
        if "/tmp/crashed" in step.command:
            continue  # how far the killed writer got differs from run to run
        for expected in step.expected:
            pattern = _pattern(expected.replace("/tmp/tour", places["/tmp/tour"]))
            assert any(pattern.match(line) for line in output), (step.command, expected, output)
        assert step.inline in result.stdout, (step.command, step.inline)


def _name(command: CommandInfo) -> str:
    """Typer names a command after its function unless told otherwise."""
    if command.name:
        return command.name
    assert command.callback is not None
    return command.callback.__name__.replace("_", "-")


def test_the_command_table_lists_every_command() -> None:
    table = _section("Commands")
    documented = set(re.findall(r"^\| `rewind ([a-z]+(?: [a-z]+)?)[ `]", table, re.M))
    registered = {_name(command) for command in app.registered_commands}
    for group in app.registered_groups:
        sub = group.typer_instance
        assert sub is not None
        registered |= {f"{group.name} {_name(command)}" for command in sub.registered_commands}
    assert documented == registered


def test_the_exit_codes_are_documented_as_the_cli_uses_them() -> None:
    table = dict(re.findall(r"^\| (\d+) \| (.+) \|$", _section("Commands"), re.M))
    assert set(table) == {str(exits.OK), str(exits.DAMAGE), str(exits.ERROR), "141"}
    assert exits.CLOSED_PIPE == 141
    for code in table:
        assert f"{code} " in exits.HELP, "--help quotes the same codes"


def _keys(value: Any) -> set[str]:
    assert isinstance(value, dict)
    return set(value)


def _documented(name: str) -> str:
    bullet = re.search(rf"^- `{re.escape(name)}.*?(?=^- |\Z)", _section("Commands"), re.M | re.S)
    assert bullet is not None, name
    return bullet.group(0)


def _assert_documented(keys: set[str], text: str) -> None:
    missing = [key for key in keys if f'"{key}"' not in text]
    assert not missing, missing


@pytest.mark.parametrize("command", ["log verify", "log stat"])
def test_verify_and_stat_json_shapes(simulated: DataDir, command: str) -> None:
    body = msgspec.json.decode(run_rewind(*command.split(), simulated.root, "--json").stdout)
    assert _keys(body) == {
        "segments",
        "damage",
        "records",
        "first_seq",
        "last_seq",
        "bytes",
        "healthy",
    }
    assert _keys(body["segments"][0]) == {"file", "first_seq", "last_seq", "records", "bytes"}
    _assert_documented(_keys(body) | _keys(body["segments"][0]), _documented("log verify"))
    deep = msgspec.json.decode(
        run_rewind("log", "verify", simulated.root, "--deep", "--json").stdout
    )
    assert _keys(deep) == _keys(body) | {"deep"}


def test_dump_history_and_state_json_shapes(simulated: DataDir) -> None:
    dump = run_rewind("log", "dump", simulated.root, "--to", 3, "--json").stdout.splitlines()
    assert len(dump) == 3, "JSON Lines: one object per line"
    row = msgspec.json.decode(dump[0])
    assert _keys(row) == {"seq", "size", "ts", "actor", "request", "type", "event"}
    _assert_documented(_keys(row), _documented("log dump --json"))

    story = run_rewind("history", "job", simulated.root, "job-00000003", "--json")
    event = msgspec.json.decode(story.stdout.splitlines()[0])
    assert _keys(event) == {"seq", "ts", "actor", "type", "event"}
    _assert_documented(_keys(event), _documented("history job --json"))

    state = msgspec.json.decode(run_rewind("state", simulated.root, "--json").stdout)
    assert _keys(state) == {"seq", "load", "state"}
    _assert_documented(_keys(state) | _keys(state["load"]), _documented("state --json"))
    for area in state["state"]:
        assert f"`{area}`" in _documented("state --json"), area
