"""What the kernel says about a process, read straight from /proc (Linux only).

A pid alone names nothing durable: the kernel hands it to the next process once the old one is
reaped (pid_max is 32768 on many machines, so this happens within hours on a busy one). Three
facts together do name one process for good: the pid, the process's start time counted in clock
ticks since boot (field 22 of /proc/PID/stat, fixed at fork, never changed by clock updates), and
the boot id (a new random uuid at every boot, when tick counts restart from zero).

psutil's `create_time()` is the same tick count plus the wall-clock boot time; that boot time is
recomputed from the current clock, so after an NTP step it shifts and a live agent would look
recycled. The tick count itself is exact and stable, so that is what identities record.

Signals go through pidfds: a pidfd pins one process, so checking "is this still the process we
mean" after opening it and then signalling through it cannot hit a successor that got the pid in
between.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import NamedTuple

PROC = Path("/proc")
BOOT_ID_PATH = PROC / "sys/kernel/random/boot_id"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

KILL_TIMEOUT = 5.0
"""How long to keep SIGKILLing a group: a process in uninterruptible sleep (D state, a hung
network filesystem) dies only when its I/O returns, and nothing may wait on it forever."""

_GONE_STATES = frozenset({"Z", "X", "x"})
"""Zombie or dead: the process ran its last instruction and only waits to be reaped."""


class ProcStat(NamedTuple):
    state: str
    """One letter: R running, S sleeping, D disk wait, T stopped, Z zombie, X dead, ..."""
    ppid: int
    pgrp: int
    start_time: float
    """Seconds after boot at which the process was created (clock ticks / SC_CLK_TCK)."""

    @property
    def running(self) -> bool:
        """Still able to do anything: neither a zombie nor dead."""
        return self.state not in _GONE_STATES


@cache
def boot_id() -> str:
    """The kernel's random id of the current boot; cached, it cannot change while we run."""
    return BOOT_ID_PATH.read_text(encoding="ascii").strip()


def read_stat(pid: int) -> ProcStat | None:
    """The process's state, parent, group and start time; None if no such process exists."""
    try:
        data = (PROC / str(pid) / "stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    # "pid (comm) state ppid pgrp ...": comm may itself hold spaces and parentheses, so the
    # fields are counted from the last ")".
    fields = data[data.rindex(b")") + 2 :].split()
    return ProcStat(
        state=fields[0].decode("ascii"),
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        start_time=int(fields[19]) / CLOCK_TICKS,
    )


def group_members(pgid: int) -> list[int]:
    """Pids of the running (not zombie) processes whose process group is `pgid`.

    Blocking: one scan of /proc, a few milliseconds for a few hundred processes.
    """
    members: list[int] = []
    for name in os.listdir(PROC):
        if not name.isdigit():
            continue
        stat = read_stat(int(name))
        if stat is not None and stat.pgrp == pgid and stat.running:
            members.append(int(name))
    return members


def signal_if(
    pid: int, sig: int, still_ours: Callable[[ProcStat], bool], *, whole_group: bool = False
) -> bool:
    """Send `sig` to `pid` only if `still_ours` accepts what /proc says about it.

    The check runs after a pidfd pins the process, so a pid recycled between the check and the
    signal is impossible. With `whole_group`, the signal goes to the process group that `pid`
    leads (killpg): there is no pidfd for a group, but a group id stays reserved while any member
    lives, so only a leader that dies and whose empty group's id is recycled within the
    microseconds between check and killpg could misdirect it. Returns whether it was sent.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        stat = read_stat(pid)
        if stat is None or not stat.running or not still_ours(stat):
            return False
        try:
            if whole_group:
                os.killpg(pid, sig)
            else:
                signal.pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            return False
        return True
    finally:
        os.close(pidfd)


def kill_group_members(pgid: int, sig: int, *, spare: int | None = None) -> int:
    """Send `sig` to every running member of group `pgid` except `spare`; returns how many.

    Member by member (not killpg) so that one member can be spared: the wrapper, which must
    live on to record how its agent ended. Blocking: one /proc scan.
    """
    sent = 0
    for pid in group_members(pgid):
        if pid != spare and signal_if(pid, sig, lambda stat: stat.pgrp == pgid):
            sent += 1
    return sent


def kill_group(pgid: int, *, spare: int | None = None, timeout: float = KILL_TIMEOUT) -> list[int]:
    """SIGKILL every member of group `pgid` but `spare` until none runs; give up after
    `timeout` seconds and return the survivors (stuck in uninterruptible sleep).

    Blocking: rescans /proc every 10 ms, which also catches children forked meanwhile.
    """
    deadline = time.monotonic() + timeout
    while kill_group_members(pgid, signal.SIGKILL, spare=spare):
        if time.monotonic() >= deadline:
            return [pid for pid in group_members(pgid) if pid != spare]
        time.sleep(0.01)
    return []
