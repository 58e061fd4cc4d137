"""The supervisor that makes an agent outlive the server: `python -m service.agents.wrapper`.

    python -I -m service.agents.wrapper [--heartbeat-interval S] [--leftover-grace S]
        [--max-output BYTES] RUN_DIR -- ARGV... < LAUNCH_REQUEST

Its standard input is a `LaunchRequest` (JSON): the agent's environment, which may hold
credentials and so never appears in a command line or in the wrapper's own environment (the
wrapper runs as the server's user, outside any sandbox: nothing a job sets may change how it
starts), and the sandbox to run the agent in, if any (`service.sandbox`).

The server starts this (through `launcher.launch`) as process A. A forks B and waits on a pipe
for B's report; B is the supervisor proper:

1. `setsid()`: B leads a new session and process group (pgid = B's pid), with no controlling
   terminal. It is no child of the server (its parent A exits at once and is reaped by the
   launcher), so it never becomes a zombie there and a SIGKILL of the server does not touch it.
2. stdin <- /dev/null, stdout/stderr -> RUN_DIR/wrapper.log, so nothing keeps the launcher's
   pipe open.
3. Writes RUN_DIR/identity (pid, start ticks, boot id) with `write_checked`, then creates
   RUN_DIR/heartbeat, then tells A "ok". Only then does it start the agent: whoever finds the
   agent running can also find its identity. If A is gone by then (the launcher gave up), B
   starts nothing and records that in the exit file: an agent no one tracks must not exist.
4. Starts ARGV (cwd inherited from the launcher, the environment from the request; inside its
   sandbox when the request has one) with stdin /dev/null and stdout+stderr appended straight
   to RUN_DIR/output (no pipe, no buffering in between: output survives the wrapper). The
   agent stays in B's process group, so one killpg reaches the
   wrapper, the agent and every grandchild that does not leave the group on purpose.
5. Touches the heartbeat every interval while waiting for the agent (a pidfd, no polling).
6. When the agent has exited: any process left in the group (a background grandchild) gets
   SIGTERM, then SIGKILL after the leftover grace. (In a sandbox nothing is left: when the
   agent's first process exits, the kernel kills the rest of its PID namespace.) Then
   RUN_DIR/exit is written. So an exit
   file means nothing of the job runs any more: its workspace may be removed.

A sandboxed agent runs under bwrap, which leads a process group of its own (a SIGTERM would
kill bwrap, whose death SIGKILLs the sandbox at once): the wrapper passes the stop signals it
receives on to the sandbox's processes, and its own death still takes the sandbox with it
(bwrap's parent-death signal, then the kernel ending the PID namespace).

Signals. SIGTERM, SIGINT and SIGHUP are caught and otherwise ignored: they come from a killpg
that already reached the agent, and the wrapper must live on to record how the agent ended.
A signal sent to the wrapper's pid alone therefore stops nothing; stop a job with
`watch.terminate`, which signals the group. If the wrapper is SIGKILLed, the agent gets SIGKILL
from the kernel (PR_SET_PDEATHSIG) and no exit file is written: the service reports the job
lost, and nothing of it keeps writing into a workspace nobody watches. Grandchildren are not
covered by that signal; `watch.terminate` on the wrapper's identity still finds them.

Output growth. The output file is the agent's stdout; with --max-output the wrapper checks its
size at every heartbeat and stops the agent (SIGTERM, SIGKILL after the grace) once it is over,
recording the reason in the exit file.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType

import msgspec

from eventlog import make_dirs
from service.agents import procfs
from service.agents.identity import (
    ExitStatus,
    RunDir,
    current_identity,
    write_exit,
    write_identity,
)
from service.sandbox import bwrap
from service.sandbox.lifetime import die_with_parent
from service.sandbox.spec import SandboxSpec

DEFAULT_HEARTBEAT_INTERVAL = 2.0
DEFAULT_LEFTOVER_GRACE = 5.0
_SWEEP_POLL = 0.02
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class LaunchRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the launcher sends on the wrapper's stdin."""

    env: dict[str, str]
    sandbox: SandboxSpec | None = None


class Options(argparse.Namespace):
    run_dir: str
    heartbeat_interval: float
    leftover_grace: float
    max_output: int | None
    command: list[str]


def parse_args(argv: Sequence[str]) -> Options:
    """Everything after the first `--` is the agent's argv, untouched (it may hold `--` too)."""
    parser = argparse.ArgumentParser(
        prog="python -m service.agents.wrapper",
        description="Run an agent detached, recording identity, heartbeat, output and exit.",
    )
    parser.add_argument("run_dir")
    parser.add_argument("--heartbeat-interval", type=float, default=DEFAULT_HEARTBEAT_INTERVAL)
    parser.add_argument("--leftover-grace", type=float, default=DEFAULT_LEFTOVER_GRACE)
    parser.add_argument("--max-output", type=int, default=None)
    argv = list(argv)
    if "--" not in argv:
        parser.error("missing `--` before the agent's command")
    split = argv.index("--")
    options = parser.parse_args(argv[:split], namespace=Options())
    options.command = argv[split + 1 :]
    if not options.command:
        parser.error("no agent command after `--`")
    if options.heartbeat_interval <= 0:
        parser.error("--heartbeat-interval must be positive")
    if options.leftover_grace < 0:
        parser.error("--leftover-grace must not be negative")
    if options.max_output is not None and options.max_output <= 0:
        parser.error("--max-output must be positive")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        request = msgspec.json.decode(sys.stdin.buffer.read(), type=LaunchRequest)
    except (OSError, msgspec.DecodeError) as exc:
        sys.stderr.write(f"rewind-wrapper: unreadable launch request on stdin: {exc}\n")
        return 2
    report_r, report_w = os.pipe()
    if os.fork() != 0:
        os.close(report_w)
        return _await_report(report_r)
    os.close(report_r)
    os._exit(_supervise(options, request, report_w))


def _await_report(report_r: int) -> int:
    """Process A: relay B's startup report to the launcher as an exit code and stderr."""
    chunks: list[bytes] = []
    while chunk := os.read(report_r, 4096):
        chunks.append(chunk)
    report = b"".join(chunks).decode("utf-8", "replace")
    if report == "ok":
        return 0
    sys.stderr.write(report or "rewind-wrapper: supervisor died before writing its identity\n")
    return 1


def _supervise(options: Options, request: LaunchRequest, report_w: int) -> int:
    """Process B, from setsid to exit file. Returns the wrapper's own exit code."""
    run = RunDir.at(options.run_dir)
    try:
        os.setsid()
        _detach_stdio(run)
        stop = _StopRequests()
        write_identity(run, current_identity(os.getpid()))
        _touch(run, create=True)
    except Exception as exc:
        _report(report_w, f"rewind-wrapper: cannot start in {run.path}: {exc}\n")
        return 1
    if not _report(report_w, "ok"):
        _log("the launcher gave up waiting; not starting the agent")
        _record_exit(run, ExitStatus(code=None, signal=None, error="launch abandoned: not started"))
        return 1
    supervisor = _Supervisor(run, options, request, stop)
    try:
        status = supervisor.run()
    except Exception as exc:  # record what we can rather than leave no exit file at all
        _log(f"supervisor failed: {exc!r}")
        supervisor.sweep()
        status = ExitStatus(code=None, signal=None, error=f"wrapper failed: {exc}")
    _record_exit(run, status)
    return 0


def _report(report_w: int, message: str) -> bool:
    try:
        os.write(report_w, message.encode())
        os.close(report_w)
    except BrokenPipeError:
        return False
    return True


def _detach_stdio(run: RunDir) -> None:
    devnull = os.open(os.devnull, os.O_RDONLY)
    log = os.open(run.wrapper_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)


def _log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    print(f"{stamp} rewind-wrapper[{os.getpid()}]: {message}", file=sys.stderr, flush=True)


def _touch(run: RunDir, *, create: bool = False) -> None:
    """Refresh the heartbeat's mtime; the file is created once and otherwise only touched."""
    if not create:
        try:
            os.utime(run.heartbeat)
            return
        except FileNotFoundError:
            _log("heartbeat file vanished; recreating it")
            make_dirs(run.path)
    os.close(os.open(run.heartbeat, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    os.utime(run.heartbeat)


def _record_exit(run: RunDir, status: ExitStatus) -> None:
    try:
        write_exit(run, status)
    except FileNotFoundError:  # the run directory was removed under us (e.g. `git clean -fdx`)
        make_dirs(run.path)
        write_exit(run, status)
    _log(f"agent ended: {status}")


class _StopRequests:
    """SIGTERM/SIGINT/SIGHUP: remembered, never fatal (see the module docstring)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.forward: Callable[[int], None] | None = None
        """Passes the signal on to a sandboxed agent, which a killpg of ours cannot reach."""
        for sig in _STOP_SIGNALS:
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        if self.forward is not None:
            self.forward(signum)


def _die_with_parent_hook() -> Callable[[], None]:
    """A preexec_fn that makes the kernel SIGKILL the agent if the wrapper dies first."""
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def hook() -> None:
        try:
            die_with_parent(libc, parent)
        except OSError:
            os._exit(126)

    return hook


class _Supervisor:
    def __init__(
        self, run: RunDir, options: Options, request: LaunchRequest, stop: _StopRequests
    ) -> None:
        self.run_dir = run
        self.options = options
        self.request = request
        self.stop = stop
        self.pgid = os.getpgrp()
        self.error: str | None = None
        self.sandbox_pid: int | None = None
        """bwrap's pid while a sandboxed agent runs: it leads a process group of its own."""
        self.kill_at: float | None = None
        """Monotonic deadline after which the wrapper SIGKILLs the agent it asked to stop."""

    def run(self) -> ExitStatus:
        if self.stop.received is not None:
            return ExitStatus(
                code=None, signal=self.stop.received, error="stopped before the agent started"
            )
        output = os.open(
            self.run_dir.output, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        try:
            agent, sandbox = self._start(output)
        except (OSError, bwrap.SandboxStartError) as exc:
            if isinstance(exc, bwrap.SandboxStartError):
                message = f"the sandbox could not be built: {exc}"
                code = 126
            else:
                message = f"cannot execute {self.options.command[0]!r}: {exc.strerror or exc}"
                code = 127 if isinstance(exc, FileNotFoundError) else 126
            os.write(output, f"rewind-wrapper: {message}\n".encode())
            return ExitStatus(code=code, signal=None, error=message)
        finally:
            os.close(output)
        _log(f"agent started: pid {agent.pid}{' in its sandbox' if sandbox else ''}")
        if sandbox is not None:
            self.sandbox_pid = agent.pid
            self.stop.forward = self.signal_agent
        try:
            returncode = self._wait(agent)
        finally:
            self.stop.forward = None
            self.sandbox_pid = None
            if sandbox is not None:
                sandbox.close()
        self.sweep()
        if returncode < 0:
            return ExitStatus(code=None, signal=-returncode, error=self.error)
        return ExitStatus(code=returncode, signal=None, error=self.error)

    def _start(self, output: int) -> tuple[subprocess.Popen[bytes], bwrap.Sandboxed | None]:
        """The agent's process: bwrap (the sandbox's outside) when sandboxed, else the agent."""
        spec = self.request.sandbox
        if spec is not None:
            sandbox = bwrap.start(spec, self.options.command, self.request.env, output=output)
            return sandbox.process, sandbox
        agent = subprocess.Popen(
            self.options.command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            env=self.request.env,
            preexec_fn=_die_with_parent_hook(),  # noqa: PLW1509 (B is single-threaded)
        )
        return agent, None

    def _wait(self, agent: subprocess.Popen[bytes]) -> int:
        """Heartbeat until the agent exits; its pidfd turns readable at that moment."""
        pidfd = os.pidfd_open(agent.pid)
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        interval = self.options.heartbeat_interval
        next_beat = time.monotonic() + interval
        try:
            while not poller.poll(max(0.0, next_beat - time.monotonic()) * 1000):
                now = time.monotonic()
                if now >= next_beat:
                    _touch(self.run_dir)
                    next_beat = now + interval
                    self._check_output()
                if self.kill_at is not None and now >= self.kill_at:
                    self.signal_agent(signal.SIGKILL)
                    self.kill_at = None
                if self.kill_at is not None:
                    next_beat = min(next_beat, self.kill_at)
        finally:
            os.close(pidfd)
        return agent.wait()

    def _check_output(self) -> None:
        limit = self.options.max_output
        if limit is None or self.error is not None:
            return
        try:
            size = os.stat(self.run_dir.output).st_size
        except FileNotFoundError:
            return
        if size > limit:
            self.error = f"output exceeded {limit} bytes"
            _log(f"{self.error}; stopping the agent")
            self.signal_agent(signal.SIGTERM)
            self.kill_at = time.monotonic() + self.options.leftover_grace

    def signal_agent(self, sig: int) -> None:
        """`sig` to the agent and everything it started, sparing the wrapper (and bwrap, whose
        death would SIGKILL its sandbox at once: the agent gets the grace period to stop)."""
        procfs.kill_group_members(self.pgid, sig, spare=os.getpid())
        if self.sandbox_pid is not None:
            procfs.kill_group_members(self.sandbox_pid, sig, spare=self.sandbox_pid)
            if sig == signal.SIGKILL:
                os.kill(self.sandbox_pid, signal.SIGKILL)

    def sweep(self) -> None:
        """Stop whatever the agent left in the group: SIGTERM, then SIGKILL after the grace."""
        me = os.getpid()

        def others() -> list[int]:
            return [pid for pid in procfs.group_members(self.pgid) if pid != me]

        if not others():
            return
        _log(f"agent left processes behind: {others()}; stopping them")
        os.killpg(self.pgid, signal.SIGTERM)
        deadline = time.monotonic() + self.options.leftover_grace
        next_beat = time.monotonic() + self.options.heartbeat_interval
        while others() and time.monotonic() < deadline:
            time.sleep(_SWEEP_POLL)
            if time.monotonic() >= next_beat:
                _touch(self.run_dir)
                next_beat = time.monotonic() + self.options.heartbeat_interval
        survivors = procfs.kill_group(self.pgid, spare=me)
        if survivors:
            _log(f"processes {survivors} do not die (uninterruptible sleep?); leaving them")


if __name__ == "__main__":
    sys.exit(main())
