"""The promise: an agent outlives a SIGKILLed server and a new process takes it over."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import msgspec

from service.agents.identity import ExitStatus, ProcessIdentity, is_alive
from service.agents.watch import read_output
from tests.agents.conftest import WAIT
from tests.support.fake_agent import fake_agent_argv

REPO = Path(__file__).resolve().parents[2]


def _server(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.agents.server_proc", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_agent_survives_a_sigkilled_server_and_is_reattached(tmp_path: Path) -> None:
    run_dir, workspace = tmp_path / "run", tmp_path / "ws"
    workspace.mkdir()
    agent = fake_agent_argv("--lines", "12", "--interval", "0.15", "--write", "result.txt=done")
    server = _server("launch", str(run_dir), str(workspace), "--", *agent)
    assert server.stdout is not None
    identity = msgspec.json.decode(server.stdout.readline(), type=ProcessIdentity)

    server.send_signal(signal.SIGKILL)  # the crash
    assert server.wait(WAIT) == -signal.SIGKILL
    assert b"line 12" not in read_output(run_dir, 0, 4096)  # the agent was not done yet
    assert is_alive(identity)

    restarted = _server("reattach", str(run_dir))
    out, _ = restarted.communicate(timeout=WAIT)
    alive, ended = (json.loads(line) for line in out.splitlines())
    assert alive == {"alive": True}  # found running by identity alone
    assert msgspec.convert(ended["exit"], ExitStatus) == ExitStatus(code=0, signal=None)
    lines = read_output(run_dir, 0, 4096).decode().splitlines()
    assert lines == [f"line {n}" for n in range(1, 13)]  # not restarted, nothing lost
    assert (workspace / "result.txt").read_text() == "done"
    assert not is_alive(identity)
