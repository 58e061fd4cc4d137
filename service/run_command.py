"""Run a helper command (git, cp) with a deadline, and find the ones a crash left behind.

Each command runs in its own session so a timeout or a cancel can kill its whole process group
(git fetch spawns git-remote-https, index-pack, ssh...). That same session survives a kill -9 of
the server, so every command carries its *target* (the directory it works on) in the
environment variable `REWIND_TARGET`, which its children inherit. Before a function works on a
target again it calls `reap_orphans(target)`: whatever still runs with that tag was started by a
call that never returned (callers serialize work per target: the repository lock, one cleanup
per job), and letting it go on would race with the new attempt.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import ByteReceiveStream, Process

TARGET_VAR = "REWIND_TARGET"
_REAP_WAIT_S = 10.0


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes


class CommandTimeoutError(Exception):
    def __init__(self, argv: Sequence[str], timeout: float, stderr: bytes) -> None:
        self.argv = tuple(argv)
        self.timeout = timeout
        self.stderr = stderr
        super().__init__(f"{argv[0]} timed out after {timeout:g}s")


def tagged_env(base: Mapping[str, str], target: Path) -> dict[str, str]:
    """`base` plus the tag that lets `reap_orphans(target)` find this command later."""
    return {**base, TARGET_VAR: str(target)}


async def run_command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    cwd: Path | None = None,
) -> CommandResult:
    """Run `argv` to completion (stdin closed), killing its process group on timeout or cancel."""
    process = await anyio.open_process(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=dict(env),
        start_new_session=True,
    )
    stdout = bytearray()
    stderr = bytearray()
    try:
        with anyio.fail_after(timeout):
            async with anyio.create_task_group() as group:
                assert process.stdout is not None and process.stderr is not None
                group.start_soon(_drain, process.stdout, stdout)
                group.start_soon(_drain, process.stderr, stderr)
            returncode = await process.wait()
        await process.aclose()
    except TimeoutError:
        await _kill_group(process)
        raise CommandTimeoutError(argv, timeout, bytes(stderr)) from None
    except BaseException:
        await _kill_group(process)
        raise
    return CommandResult(tuple(argv), returncode, bytes(stdout), bytes(stderr))


async def _drain(stream: ByteReceiveStream, into: bytearray) -> None:
    async for chunk in stream:
        into += chunk


async def _kill_group(process: Process) -> None:
    with anyio.CancelScope(shield=True):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        await process.aclose()


def reap_orphans(target: Path) -> int:
    """SIGKILL every process still tagged with `target`; return how many there were.

    Reads /proc directly (processes of other users are unreadable and skipped). Blocking: it
    waits, at most a few seconds, until they are dead; call it from a worker thread.
    """
    wanted = os.fsencode(f"{TARGET_VAR}={target}")
    killed: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as environ:
                if wanted not in environ.read().split(b"\0"):
                    continue
            os.kill(int(entry.name), signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        killed.append(int(entry.name))
    _wait_dead(killed)
    return len(killed)


def _wait_dead(pids: list[int]) -> None:
    """Wait until each is gone or a zombie: an orphan's parent (init) may be slow to reap it."""
    deadline = time.monotonic() + _REAP_WAIT_S
    pending = pids
    while pending and time.monotonic() < deadline:
        pending = [pid for pid in pending if _alive(pid)]
        if pending:
            time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rpartition(b")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in (b"Z", b"X")
