"""terminate(): the whole group goes, the exit is recorded, and nobody else is ever signalled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import nullcontext

import anyio
import pytest

from service.agents import procfs
from service.agents.identity import ExitStatus, ProcessIdentity, current_identity, is_alive
from service.agents.watch import kill_group_now, terminate
from tests.agents.conftest import Agents, eventually, read_pid, running

Terminate = Callable[[ProcessIdentity, float], Awaitable[None]]


async def terminate_unchecked(identity: ProcessIdentity, grace_seconds: float) -> None:
    """Broken: signals the recorded group without checking that it is still ours."""
    os.killpg(identity.pid, signal.SIGTERM)
    await anyio.sleep(grace_seconds)


def test_agent_and_a_grandchild_that_ignores_sigterm_are_gone(agents: Agents) -> None:
    agent = agents.start(
        "--spawn", "--ignore-term --pidfile grandchild.pid --sleep 60",
        "--pidfile", "agent.pid", "--sleep", "60",
    )  # fmt: skip
    grandchild = current_identity(read_pid(agent.path("grandchild.pid")))
    agent_pid = read_pid(agent.path("agent.pid"))
    assert set(procfs.group_members(agent.identity.pid)) == {
        agent.identity.pid, agent_pid, grandchild.pid,
    }  # fmt: skip

    anyio.run(terminate, agent.identity, 0.5)

    assert procfs.group_members(agent.identity.pid) == []
    assert not is_alive(grandchild)
    assert not is_alive(agent.identity)
    assert agent.wait() == ExitStatus(code=None, signal=signal.SIGTERM)


def test_an_agent_ignoring_sigterm_is_killed_after_the_grace_and_the_exit_recorded(
    agents: Agents,
) -> None:
    agent = agents.start("--ignore-term", "--ready", "ready", "--sleep", "60")
    eventually(agent.path("ready").exists)
    anyio.run(terminate, agent.identity, 0.3)
    assert procfs.group_members(agent.identity.pid) == []
    assert agent.wait() == ExitStatus(code=None, signal=signal.SIGKILL)


def test_a_hung_wrapper_is_killed_too(agents: Agents) -> None:
    agent = agents.start("--pidfile", "agent.pid", "--sleep", "60")
    agent_pid = read_pid(agent.path("agent.pid"))
    os.kill(agent.identity.pid, signal.SIGSTOP)  # the wrapper stops answering
    anyio.run(lambda: terminate(agent.identity, 0.2, wrapper_exit_wait=0.2))
    assert procfs.group_members(agent.identity.pid) == []
    assert not running(agent_pid)
    assert agent.wait() is None  # it could not record anything: the job is lost


def test_kill_group_now_takes_everything_at_once(agents: Agents) -> None:
    agent = agents.start("--spawn", "--ignore-term --sleep 60", "--ignore-term", "--sleep", "60")
    eventually(lambda: len(procfs.group_members(agent.identity.pid)) == 3)
    kill_group_now(agent.identity)
    assert procfs.group_members(agent.identity.pid) == []
    assert agent.wait() is None


def test_terminating_a_finished_agent_is_a_no_op(agents: Agents) -> None:
    agent = agents.start("--exit", "0")
    assert agent.wait() == ExitStatus(code=0, signal=None)
    eventually(lambda: not is_alive(agent.identity))
    anyio.run(terminate, agent.identity, 5.0)  # returns at once, raises nothing
    kill_group_now(agent.identity)


@pytest.mark.parametrize("stop", [terminate, terminate_unchecked])
def test_a_process_that_merely_reuses_the_pid_is_never_signalled(stop: Terminate) -> None:
    """Our identity names a pid that now belongs to a stranger (another start time)."""
    stranger = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        real = current_identity(stranger.pid)
        ours = ProcessIdentity(stranger.pid, real.start_time - 1.0, real.boot_id)
        anyio.run(stop, ours, 0.2)
        caught = nullcontext() if stop is terminate else pytest.raises(AssertionError)
        with caught:
            assert stranger.poll() is None and is_alive(real)
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_to_the_wrapper_alone_stops_nothing(agents: Agents, sig: signal.Signals) -> None:
    """The wrapper must outlive its agent to record how it ended; stopping is terminate()'s
    job, which signals the whole group."""
    agent = agents.start("--pidfile", "agent.pid", "--sleep", "60")
    agent_pid = read_pid(agent.path("agent.pid"))
    os.kill(agent.identity.pid, sig)
    time.sleep(0.3)
    assert is_alive(agent.identity) and running(agent_pid)
    anyio.run(terminate, agent.identity, 1.0)
    assert agent.wait() == ExitStatus(code=None, signal=signal.SIGTERM)
