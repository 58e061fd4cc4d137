"""is_alive: pid AND start time AND boot id, and a zombie is dead.

Each property is also checked against a deliberately broken variant of the check, which the
same assertion must catch: a test that would pass either way proves nothing.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import pytest

from eventlog import CorruptFileError
from service.agents import procfs
from service.agents.identity import (
    ExitStatus,
    ProcessIdentity,
    RunDir,
    current_identity,
    is_alive,
    read_exit,
    read_identity,
)
from tests.agents.conftest import Agents, eventually

Check = Callable[[ProcessIdentity], bool]


def alive_ignoring_start_time(identity: ProcessIdentity) -> bool:
    """Broken: a pid that exists (on this boot) is taken for ours."""
    stat = procfs.read_stat(identity.pid)
    return identity.boot_id == procfs.boot_id() and stat is not None and stat.running


def alive_ignoring_boot(identity: ProcessIdentity) -> bool:
    """Broken: pid and start ticks match, whatever boot they come from."""
    stat = procfs.read_stat(identity.pid)
    return stat is not None and stat.running and stat.start_time == identity.start_time


def alive_ignoring_zombies(identity: ProcessIdentity) -> bool:
    """Broken: a process that exited but was not reaped yet still counts."""
    stat = procfs.read_stat(identity.pid)
    return (
        identity.boot_id == procfs.boot_id()
        and stat is not None
        and stat.start_time == identity.start_time
    )


def sound_or_caught(check: Check) -> AbstractContextManager[object]:
    """Around the assertion: nothing for the real check, pytest.raises for a broken one."""
    return nullcontext() if check is is_alive else pytest.raises(AssertionError)


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """A live process we own that is not an agent of ours."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("check", [is_alive, alive_ignoring_start_time])
def test_a_recycled_pid_is_not_alive(check: Check, bystander: subprocess.Popen[bytes]) -> None:
    real = current_identity(bystander.pid)
    assert check(real)
    one_tick_earlier = real.start_time - 1 / procfs.CLOCK_TICKS
    recycled = ProcessIdentity(bystander.pid, one_tick_earlier, real.boot_id)
    with sound_or_caught(check):
        assert not check(recycled)


@pytest.mark.parametrize("check", [is_alive, alive_ignoring_boot])
def test_an_identity_from_another_boot_is_not_alive(
    check: Check, bystander: subprocess.Popen[bytes]
) -> None:
    real = current_identity(bystander.pid)
    other_boot = ProcessIdentity(real.pid, real.start_time, "00000000-0000-4000-8000-000000000000")
    with sound_or_caught(check):
        assert not check(other_boot)


@pytest.mark.parametrize("check", [is_alive, alive_ignoring_zombies])
def test_a_zombie_is_not_alive(check: Check) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    identity = current_identity(child.pid)
    try:
        eventually(lambda: getattr(procfs.read_stat(child.pid), "state", None) == "Z")
        with sound_or_caught(check):
            assert not check(identity)
    finally:
        child.wait()


def test_a_finished_agent_is_not_alive_and_its_files_say_how_it_ended(agents: Agents) -> None:
    agent = agents.start("--sleep", "0.3", "--exit", "5")
    assert is_alive(agent.identity)
    assert agent.wait() == ExitStatus(code=5, signal=None)
    eventually(lambda: not is_alive(agent.identity))
    assert read_identity(agent.run_dir) == agent.identity
    assert read_exit(agent.run_dir) == ExitStatus(code=5, signal=None)


def test_damaged_files_are_detected_not_believed(agents: Agents) -> None:
    agent = agents.start("--exit", "0")
    agent.wait()
    run = RunDir.at(agent.run_dir)
    for path in (run.identity, run.exit):
        data = bytearray(path.read_bytes())
        data[-2] ^= 0x01
        path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError):
        read_identity(agent.run_dir)
    with pytest.raises(CorruptFileError):
        read_exit(agent.run_dir)


def test_nothing_written_yet_reads_as_none(tmp_path: Path) -> None:
    assert read_identity(tmp_path) is None
    assert read_exit(tmp_path) is None
