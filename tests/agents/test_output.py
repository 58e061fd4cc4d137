"""The output file: read by offset for the HTTP endpoint, and bounded if asked."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from service.agents.identity import ExitStatus
from service.agents.watch import MAX_OUTPUT_READ, read_output
from tests.agents.conftest import Agents


def test_read_output_by_offset_and_limit(agents: Agents) -> None:
    agent = agents.start("--print", "abcdef", "--print", "ghij")
    agent.wait()
    assert read_output(agent.run_dir, 0, 100) == b"abcdef\nghij\n"
    assert read_output(agent.run_dir, 2, 3) == b"cde"
    assert read_output(agent.run_dir, 7, 100) == b"ghij\n"
    assert read_output(agent.run_dir, 12, 100) == b""
    assert read_output(agent.run_dir, 10_000, 100) == b""


def test_read_output_before_anything_was_written(tmp_path: Path) -> None:
    assert read_output(tmp_path, 0, 10) == b""


@pytest.mark.parametrize(("offset", "limit"), [(-1, 10), (0, 0), (0, MAX_OUTPUT_READ + 1)])
def test_read_output_refuses_bad_ranges(tmp_path: Path, offset: int, limit: int) -> None:
    with pytest.raises(ValueError):
        read_output(tmp_path, offset, limit)


def test_stdout_and_stderr_land_in_one_file_in_write_order(agents: Agents) -> None:
    agent = agents.start("--print", "out", "--stderr", "err", "--lines", "3", "--interval", "0.02")
    agent.wait()
    assert agent.output().decode().splitlines() == ["out", "err", "line 1", "line 2", "line 3"]


def test_an_agent_over_its_output_limit_is_stopped_and_the_reason_recorded(
    agents: Agents,
) -> None:
    agent = agents.start("--bytes", "200000", "--sleep", "30", max_output_bytes=10_000)
    status = agent.wait()
    assert status == ExitStatus(
        code=None, signal=signal.SIGTERM, error="output exceeded 10000 bytes"
    )
