"""Starting an agent under a wrapper that outlives the server (see `service.agents.wrapper`)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import msgspec

from eventlog import make_dirs
from service.agents.identity import ProcessIdentity, RunDir, read_identity
from service.agents.watch import kill_group_now
from service.agents.wrapper import (
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_LEFTOVER_GRACE,
    LaunchRequest,
)
from service.sandbox.spec import SandboxSpec

DEFAULT_STARTUP_TIMEOUT = 10.0
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class LaunchError(Exception):
    """The agent could not be started; the message says why (with the wrapper's stderr)."""


def launch(
    argv: Sequence[str],
    *,
    cwd: Path | str,
    env: Mapping[str, str],
    run_dir: Path | str,
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
    leftover_grace: float = DEFAULT_LEFTOVER_GRACE,
    max_output_bytes: int | None = None,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
    sandbox: SandboxSpec | None = None,
) -> ProcessIdentity:
    """Start `argv` detached under a wrapper; return the wrapper's identity once it is on disk.

    `argv` runs exactly as given (no shell), in `cwd`, with exactly `env` as its environment,
    stdin /dev/null, stdout+stderr appended to RUN_DIR/output; inside `sandbox` when given
    (`service.sandbox`). `env` reaches the agent alone: the wrapper gets it on its stdin and runs
    with a fixed environment of its own, so no variable of a job can change how it starts.
    `run_dir` is created if needed and must not have been used by an earlier launch: one run
    directory, one agent. If the server crashes after this returns but before it recorded the
    identity, `read_identity` finds it again there.

    An agent that cannot be executed (missing binary) is not a launch error: the wrapper is up,
    and records exit code 127 (126 if not executable) with the reason. LaunchError means no
    agent runs: bad arguments, unusable cwd or run directory, or a wrapper that did not report
    within `startup_timeout` seconds (it is then killed).

    Blocking: waits for the wrapper's start (about a Python start-up, ~0.1 s, plus an fsync);
    from async code call it through `anyio.to_thread.run_sync`. Leaves no child process behind:
    the process it spawns exits as soon as the detached supervisor has reported.
    """
    if not argv:
        raise LaunchError("empty agent command")
    if heartbeat_interval <= 0:
        raise LaunchError(f"heartbeat interval must be positive, got {heartbeat_interval}")
    run = RunDir.at(Path(run_dir).absolute())
    try:
        make_dirs(run.path)
    except OSError as exc:
        raise LaunchError(f"cannot create run directory {run.path}: {exc}") from exc
    if run.identity.exists() or run.exit.exists():
        raise LaunchError(f"run directory {run.path} was already used by an earlier launch")
    command = [
        sys.executable,
        "-I",  # the workspace is cwd: no module of the repository under test may shadow ours
        "-m",
        "service.agents.wrapper",
        "--heartbeat-interval",
        repr(heartbeat_interval),
        "--leftover-grace",
        repr(leftover_grace),
        *(["--max-output", str(max_output_bytes)] if max_output_bytes is not None else []),
        str(run.path),
        "--",
        *argv,
    ]
    try:
        wrapper = subprocess.Popen(
            command,
            cwd=cwd,
            env=_wrapper_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        raise LaunchError(f"cannot start the agent wrapper in {cwd}: {exc}") from exc
    request = msgspec.json.encode(LaunchRequest(env=dict(env), sandbox=sandbox))
    try:
        _, stderr = wrapper.communicate(request, timeout=startup_timeout)
    except subprocess.TimeoutExpired:
        wrapper.kill()
        wrapper.communicate()
        identity = read_identity(run.path)
        if identity is not None:
            kill_group_now(identity)
        raise LaunchError(
            f"the agent wrapper did not start within {startup_timeout} s (run dir {run.path})"
        ) from None
    if wrapper.returncode != 0:
        detail = stderr.decode("utf-8", "replace").strip() or "no message"
        raise LaunchError(f"the agent wrapper failed (exit {wrapper.returncode}): {detail}")
    identity = read_identity(run.path)
    if identity is None:
        raise LaunchError(f"the agent wrapper reported success but left no identity in {run.path}")
    return identity


def _wrapper_env() -> dict[str, str]:
    """The wrapper's own environment: the server's PATH (to find bwrap and friends), whatever
    the agent's environment is."""
    return {"PATH": os.environ.get("PATH", _DEFAULT_PATH), "LC_ALL": "C.UTF-8"}
