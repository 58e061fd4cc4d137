"""The heartbeat moves while the wrapper lives and stops when it dies; the agent dies with it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from service.agents.identity import RunDir
from service.agents.watch import heartbeat_age
from tests.agents.conftest import HEARTBEAT, Agents, eventually, read_pid, running


def _mtime(run_dir: Path) -> int:
    return RunDir.at(run_dir).heartbeat.stat().st_mtime_ns


def test_heartbeat_moves_while_running_and_is_one_file(agents: Agents) -> None:
    agent = agents.start("--sleep", "30")
    heartbeat = RunDir.at(agent.run_dir).heartbeat
    inode = heartbeat.stat().st_ino
    first = _mtime(agent.run_dir)
    eventually(lambda: _mtime(agent.run_dir) > first)
    second = _mtime(agent.run_dir)
    eventually(lambda: _mtime(agent.run_dir) > second)
    assert heartbeat.stat().st_ino == inode  # touched, never replaced
    age = heartbeat_age(agent.run_dir, time.time())
    assert age is not None and age < 50 * HEARTBEAT


def test_heartbeat_goes_stale_when_the_wrapper_is_sigkilled(agents: Agents) -> None:
    agent = agents.start("--pidfile", "agent.pid", "--sleep", "30")
    agent_pid = read_pid(agent.path("agent.pid"))
    os.kill(agent.identity.pid, signal.SIGKILL)
    eventually(lambda: not running(agent_pid))  # PR_SET_PDEATHSIG: no agent without its wrapper
    frozen = _mtime(agent.run_dir)
    time.sleep(5 * HEARTBEAT)
    assert _mtime(agent.run_dir) == frozen
    age = heartbeat_age(agent.run_dir, time.time())
    assert age is not None and age >= 5 * HEARTBEAT
    assert agent.wait() is None  # no exit file: lost


def test_no_heartbeat_before_any_wrapper(tmp_path: Path) -> None:
    assert heartbeat_age(tmp_path, time.time()) is None
