"""launch(): the agent runs detached, as given, and its outcome is recorded."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from service.agents import procfs
from service.agents.identity import ExitStatus, RunDir, read_exit, read_identity
from service.agents.launcher import LaunchError, launch
from tests.agents.conftest import Agents, eventually, read_pid, running
from tests.support.fake_agent import fake_agent_argv


def _parent(pid: int) -> int:
    stat = procfs.read_stat(pid)
    assert stat is not None
    return stat.ppid


def test_output_is_recorded_and_exit_code_zero(agents: Agents) -> None:
    agent = agents.start("--print", "hello", "--stderr", "oops", "--lines", "3")
    assert agent.wait() == ExitStatus(code=0, signal=None)
    assert agent.output() == b"hello\noops\nline 1\nline 2\nline 3\n"
    assert read_identity(agent.run_dir) == agent.identity


def test_exit_code_three(agents: Agents) -> None:
    agent = agents.start("--print", "failing", "--exit", "3")
    assert agent.wait() == ExitStatus(code=3, signal=None)
    assert read_exit(agent.run_dir) == ExitStatus(code=3, signal=None)


def test_killed_by_a_signal(agents: Agents) -> None:
    agent = agents.start("--kill-self", "SIGUSR1")
    assert agent.wait() == ExitStatus(code=None, signal=signal.SIGUSR1)


def test_runs_in_cwd_with_exactly_the_given_environment(agents: Agents) -> None:
    env = {"PATH": os.environ["PATH"], "JOB_TOKEN": "t0k3n"}
    agent = agents.start(
        argv=fake_agent_argv("--echo-cwd", "--echo-env", "JOB_TOKEN", "--echo-env", "HOME"), env=env
    )
    assert agent.wait() == ExitStatus(code=0, signal=None)
    environment, cwd = (json.loads(line) for line in agent.output().splitlines())
    assert cwd == {"cwd": str(agent.workspace)}
    assert environment == {"env": {"JOB_TOKEN": "t0k3n", "HOME": None}}


def test_a_program_that_cannot_be_executed_is_recorded_not_raised(agents: Agents) -> None:
    agent = agents.start(argv=["/nonexistent/agent", "--flag"])
    status = agent.wait()
    assert status is not None and status.code == 127 and status.signal is None
    assert status.error is not None and "/nonexistent/agent" in status.error
    assert b"cannot execute '/nonexistent/agent'" in agent.output()


def test_wrapper_leads_its_own_session_and_the_agent_shares_its_group(agents: Agents) -> None:
    agent = agents.start("--pidfile", "agent.pid", "--sleep", "30")
    agent_pid = read_pid(agent.path("agent.pid"))
    wrapper = agent.identity.pid
    assert os.getsid(wrapper) == wrapper  # setsid: its own session, no terminal
    assert os.getpgid(agent_pid) == wrapper  # one killpg reaches both
    assert _parent(wrapper) != os.getpid()  # not a child of the launching process
    assert _parent(agent_pid) == wrapper


def test_the_agent_inherits_no_descriptor_of_the_server(agents: Agents, tmp_path: Path) -> None:
    """A descriptor the server holds (its log, its listening socket) never reaches an agent,
    not even one marked inheritable: else the agent could keep the log's flock after a crash."""
    leaked = os.open(tmp_path / "server-lock", os.O_WRONLY | os.O_CREAT)
    os.set_inheritable(leaked, True)
    try:
        agent = agents.start("--pidfile", "agent.pid", "--sleep", "30")
        agent_pid = read_pid(agent.path("agent.pid"))
        fds = {
            int(fd): os.readlink(f"/proc/{agent_pid}/fd/{fd}")
            for fd in os.listdir(f"/proc/{agent_pid}/fd")
        }
    finally:
        os.close(leaked)
    output = str(RunDir.at(agent.run_dir).output)
    assert fds == {0: os.devnull, 1: output, 2: output}


def test_a_run_directory_is_used_once(agents: Agents) -> None:
    agent = agents.start("--exit", "0")
    agent.wait()
    with pytest.raises(LaunchError, match="already used"):
        launch(fake_agent_argv(), cwd=agent.workspace, env=dict(os.environ), run_dir=agent.run_dir)


def test_a_wrapper_that_cannot_start_reports_why(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "heartbeat").mkdir(parents=True)  # the wrapper cannot create its heartbeat file
    with pytest.raises(LaunchError, match=r"wrapper failed \(exit 1\): .*Is a directory"):
        launch(
            fake_agent_argv("--print", "never"), cwd=tmp_path, env=dict(os.environ), run_dir=run_dir
        )
    identity = read_identity(run_dir)  # written first: whoever looks finds it, and dead
    assert identity is not None
    eventually(lambda: not running(identity.pid))
    assert not (run_dir / "output").exists()  # the agent never started


def test_a_missing_cwd_is_a_launch_error(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match="cannot start the agent wrapper"):
        launch(
            fake_agent_argv(),
            cwd=tmp_path / "missing",
            env=dict(os.environ),
            run_dir=tmp_path / "run",
        )


def test_no_child_and_no_zombie_is_left_in_the_launching_process(agents: Agents) -> None:
    launched = [agents.start("--print", str(n)) for n in range(12)]
    for agent in launched:
        assert agent.wait() == ExitStatus(code=0, signal=None)
    me = os.getpid()
    children_or_zombies = [
        pid
        for name in os.listdir("/proc")
        if name.isdigit()
        and (stat := procfs.read_stat(pid := int(name))) is not None
        and stat.ppid == me
    ]
    assert children_or_zombies == []


def test_a_launch_that_times_out_leaves_nothing_running(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(LaunchError, match="did not start within"):
        launch(
            fake_agent_argv("--sleep", "60"),
            cwd=tmp_path,
            env=dict(os.environ),
            run_dir=run_dir,
            startup_timeout=0.001,
        )
    identity = read_identity(run_dir)
    if identity is not None:  # the supervisor got as far as its identity: it must be gone
        eventually(lambda: not running(identity.pid))
    assert not (run_dir / "output").exists()  # the agent never started
