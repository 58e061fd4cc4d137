"""Launching real fake agents in tmp directories, and never leaving one behind."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from service.agents import procfs
from service.agents.identity import ExitStatus, ProcessIdentity, is_alive, read_exit
from service.agents.launcher import launch
from service.agents.watch import kill_group_now, read_output
from tests.support.fake_agent import fake_agent_argv

HEARTBEAT = 0.1
"""Short, so heartbeat tests take fractions of a second."""
WAIT = 15.0
"""Generous bound for anything to happen on a loaded 2-core machine; never a timing claim."""


@dataclass
class Agent:
    identity: ProcessIdentity
    run_dir: Path
    workspace: Path

    def wait(self, timeout: float = WAIT) -> ExitStatus | None:
        """How the agent ended, read as the server's watcher reads it (``follow``): once the
        wrapper is gone, its exit file; None when it recorded none (the job is lost)."""
        eventually(lambda: not is_alive(self.identity), timeout)
        return read_exit(self.run_dir)

    def output(self) -> bytes:
        return read_output(self.run_dir, 0, 1 << 20)

    def path(self, name: str) -> Path:
        return self.workspace / name


@dataclass
class Agents:
    """Starts agents for one test and kills whatever of them is left when it ends."""

    root: Path
    started: list[Agent] = field(default_factory=list)

    def start(
        self,
        *options: str,
        argv: list[str] | None = None,
        env: dict[str, str] | None = None,
        heartbeat_interval: float = HEARTBEAT,
        leftover_grace: float = 0.5,
        max_output_bytes: int | None = None,
    ) -> Agent:
        n = len(self.started)
        workspace = self.root / f"ws{n}"
        workspace.mkdir()
        run_dir = self.root / f"run{n}"
        identity = launch(
            argv if argv is not None else fake_agent_argv(*options),
            cwd=workspace,
            env=dict(os.environ) if env is None else env,
            run_dir=run_dir,
            heartbeat_interval=heartbeat_interval,
            leftover_grace=leftover_grace,
            max_output_bytes=max_output_bytes,
        )
        agent = Agent(identity, run_dir, workspace)
        self.started.append(agent)
        return agent

    def cleanup(self) -> None:
        for agent in self.started:
            kill_group_now(agent.identity)


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Agents]:
    started = Agents(tmp_path)
    yield started
    started.cleanup()


def eventually(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """Poll `condition` until it holds; fail the test if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition never held within {timeout} s")
        time.sleep(0.01)


def read_pid(path: Path) -> int:
    eventually(lambda: path.exists() and path.read_text() != "")
    return int(path.read_text())


def running(pid: int) -> bool:
    stat = procfs.read_stat(pid)
    return stat is not None and stat.running
