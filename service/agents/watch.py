"""Watching and stopping a launched agent from any process, the server after a crash included.

Everything here works from the run directory and the identity alone: no handle, no pipe, no
parent/child relation to the agent, so a restarted server does exactly what the server that
launched it would have done.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import anyio

from service.agents import procfs
from service.agents.identity import ProcessIdentity, RunDir, is_alive

WRAPPER_EXIT_WAIT = 5.0
"""After SIGKILLing the agent's group, how long the wrapper gets to record the exit and leave."""
_TERMINATE_POLL = 0.05
MAX_OUTPUT_READ = 16 * 1024 * 1024


def heartbeat_age(run_dir: Path | str, now: float) -> float | None:
    """Seconds since the wrapper last touched its heartbeat (`now` is time.time()); None if it
    never created one. Never negative, even if the clock stepped back. Blocking: one stat."""
    try:
        mtime = RunDir.at(run_dir).heartbeat.stat().st_mtime
    except FileNotFoundError:
        return None
    return max(0.0, now - mtime)


async def terminate(
    identity: ProcessIdentity, grace_seconds: float, *, wrapper_exit_wait: float = WRAPPER_EXIT_WAIT
) -> None:
    """Stop the agent and everything in its process group; returns once the wrapper is gone.

    SIGTERM to the whole group (the wrapper ignores it and stays to record the exit). If the
    wrapper is still there after `grace_seconds`, every other member gets SIGKILL, the wrapper
    gets `wrapper_exit_wait` seconds to write the exit file (signal 9) and leave, and is
    SIGKILLed itself if it does not (a hung wrapper: then no exit file is written).
    A no-op for an identity that is not alive: a recycled pid is never signalled.
    """
    if not _signal_group(identity, signal.SIGTERM):
        return
    if await _wait_gone(identity, grace_seconds):
        return
    deadline = time.monotonic() + wrapper_exit_wait
    while (
        is_alive(identity)
        and procfs.kill_group_members(identity.pid, signal.SIGKILL, spare=identity.pid)
        and time.monotonic() < deadline
    ):
        await anyio.sleep(_TERMINATE_POLL)
    if await _wait_gone(identity, max(0.0, deadline - time.monotonic())):
        return
    await anyio.to_thread.run_sync(kill_group_now, identity)


def kill_group_now(identity: ProcessIdentity) -> None:
    """SIGKILL the whole group at once, wrapper included (so no exit file): for a wrapper that
    is hung or for a launch that failed half way. A no-op for an identity that is not alive.
    Blocking: /proc scans until nothing of the group runs, at most procfs.KILL_TIMEOUT."""
    if _signal_group(identity, signal.SIGKILL):
        procfs.kill_group(identity.pid)


def read_output(run_dir: Path | str, offset: int, limit: int) -> bytes:
    """Up to `limit` bytes of the agent's output from byte `offset` on; b"" past the end or if
    nothing was written yet. Blocking: one pread of at most `limit` bytes (max 16 MiB)."""
    if offset < 0:
        raise ValueError(f"offset must not be negative, got {offset}")
    if not 0 < limit <= MAX_OUTPUT_READ:
        raise ValueError(f"limit must be in 1..{MAX_OUTPUT_READ}, got {limit}")
    try:
        fd = os.open(RunDir.at(run_dir).output, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return b""
    try:
        return os.pread(fd, limit, offset)
    finally:
        os.close(fd)


def _signal_group(identity: ProcessIdentity, sig: int) -> bool:
    """killpg the identity's group, but only if the identity is alive at that very moment."""
    if identity.boot_id != procfs.boot_id():
        return False
    return procfs.signal_if(
        identity.pid,
        sig,
        lambda stat: stat.start_time == identity.start_time,
        whole_group=True,
    )


async def _wait_gone(identity: ProcessIdentity, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while is_alive(identity):
        if time.monotonic() >= deadline:
            return False
        await anyio.sleep(_TERMINATE_POLL)
    return True
