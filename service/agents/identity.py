"""The files a wrapper leaves in its run directory, and who counts as "still running".

Layout of a run directory (one per launch; `launch` refuses a directory already used):

    identity    pid, start time and boot id of the wrapper   write_checked, before the agent starts
    heartbeat   empty; its mtime is touched every few seconds created once, then only utime
    output      the agent's stdout and stderr, appended       opened O_APPEND by the wrapper
    exit        how the agent ended: code / signal / error    write_checked, after the group is gone
    wrapper.log the wrapper's own diagnostics                 appended

The identity names the wrapper, not the agent: the wrapper is the process group leader (its pid
is the group id), outlives the agent, and is the one that writes `exit`.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import msgspec

from eventlog import read_checked, write_checked
from service.agents import procfs


class ProcessIdentity(msgspec.Struct, frozen=True):
    """One process for good: a pid is recycled, pid + start time + boot id never is.

    `start_time` is seconds after boot (clock ticks since boot / SC_CLK_TCK, exactly what
    psutil's create_time() is before it adds the wall-clock boot time): immune to clock steps,
    so a live process is never mistaken for a recycled pid after an NTP adjustment.
    `pid` is also the process group id of the agent and everything it spawns.
    """

    pid: int
    start_time: float
    boot_id: str


class ExitStatus(msgspec.Struct, frozen=True):
    """How the agent ended: `code` if it exited, `signal` if a signal killed it; both None only
    when no agent ever ran or the wrapper itself failed (then `error` says why)."""

    code: int | None
    signal: int | None
    error: str | None = None
    """Set when the wrapper, not the agent, decided: could not execute it (code 126/127),
    stopped it for too much output (signal set), was told to stop before it started (signal
    set), the launcher gave up before it started, or the wrapper failed."""


class RunDir(NamedTuple):
    """Where a wrapper keeps its files. All paths derive from the directory."""

    path: Path

    @classmethod
    def at(cls, path: Path | str) -> RunDir:
        return cls(Path(path))

    @property
    def identity(self) -> Path:
        return self.path / "identity"

    @property
    def heartbeat(self) -> Path:
        return self.path / "heartbeat"

    @property
    def output(self) -> Path:
        return self.path / "output"

    @property
    def exit(self) -> Path:
        return self.path / "exit"

    @property
    def wrapper_log(self) -> Path:
        return self.path / "wrapper.log"


def current_identity(pid: int) -> ProcessIdentity:
    """The identity of a running process (raises ProcessLookupError if there is none)."""
    stat = procfs.read_stat(pid)
    if stat is None:
        raise ProcessLookupError(pid)
    return ProcessIdentity(pid=pid, start_time=stat.start_time, boot_id=procfs.boot_id())


def is_alive(identity: ProcessIdentity) -> bool:
    """True only if that very process still runs: same pid AND same start time AND same boot.

    A recycled pid (other start time), a zombie, or an identity from another boot is not alive.
    Blocking: reads two small /proc files.
    """
    if identity.boot_id != procfs.boot_id():
        return False
    stat = procfs.read_stat(identity.pid)
    return stat is not None and stat.running and stat.start_time == identity.start_time


def write_identity(run_dir: RunDir, identity: ProcessIdentity) -> None:
    write_checked(run_dir.identity, msgspec.json.encode(identity))


def read_identity(run_dir: Path | str) -> ProcessIdentity | None:
    """The wrapper's identity; None if it never wrote one. Raises CorruptFileError if damaged."""
    run = RunDir.at(run_dir)
    try:
        data = read_checked(run.identity)
    except FileNotFoundError:
        return None
    return msgspec.json.decode(data, type=ProcessIdentity)


def write_exit(run_dir: RunDir, status: ExitStatus) -> None:
    write_checked(run_dir.exit, msgspec.json.encode(status))


def read_exit(run_dir: Path | str) -> ExitStatus | None:
    """How the agent ended; None while it runs or if the wrapper died before recording it.

    Raises CorruptFileError if the file is damaged.
    """
    run = RunDir.at(run_dir)
    try:
        data = read_checked(run.exit)
    except FileNotFoundError:
        return None
    return msgspec.json.decode(data, type=ExitStatus)
