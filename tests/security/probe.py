"""A hostile agent: tries every way out of its sandbox and reports what happened, as JSON.

The tests run this file's text as the prompt of a `python3 -c {prompt}` agent, after a first
line `TARGETS = {...}` naming what to attack (paths, pids, addresses). Standard library only.
Every attempt is harmless when it succeeds (files are opened, not changed; a created file is
removed at once), so the same probe can run unconfined to prove that each attempt would have
seen an escape. Each result is "blocked: ..." or "ESCAPED: ...".
"""

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

TARGETS: dict[str, Any] = globals().get("TARGETS", {})


def attempt(action: Callable[[], str]) -> str:
    try:
        detail = action()
    except Exception as exc:  # every refusal is an answer, whatever its type
        return f"blocked: {type(exc).__name__}: {exc}"
    return f"ESCAPED: {detail}"


def read(path: str) -> str:
    with open(path, "rb") as file:
        return f"read {len(file.read(4096))} bytes of {path}"


def open_for_append(path: str) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.close(fd)
    return f"opened {path} for writing"


def create(path: str) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    os.unlink(path)
    return f"created {path}"


def connect(host: str, port: int) -> Callable[[], str]:
    def action() -> str:
        with socket.create_connection((host, port), timeout=3) as conn:
            return f"connected to {conn.getpeername()}"

    return action


def connect_unix(path: str) -> str:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(3)
        conn.connect(path)
        return f"connected to {path}"


def signal_process(pid: int) -> str:
    os.kill(pid, 0)
    return f"may signal pid {pid}"


def see_process(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as file:
        return f"sees pid {pid}: {file.read(80)!r}"


def is_root() -> str:
    if os.getuid() == 0 or os.geteuid() == 0:
        return "runs as root"
    raise PermissionError(f"uid {os.getuid()}")


def leave_a_process(marker: str) -> str:
    """Double fork + setsid: a process that leaves the job's process group on purpose."""
    code = "import time\ntime.sleep(90)\n"
    subprocess.Popen(
        [sys.executable, "-c", code, marker],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return "started"


def real_entries(path: str) -> str:
    """The data directory's own entries, if visible (the path down to the agent's own
    workspace exists in the sandbox: it is bound at the same path)."""
    seen = set(os.listdir(path)) & {"log", "admin-token", "runs", "repos", "snapshots"}
    if not seen:
        raise FileNotFoundError(f"only {os.listdir(path)} there")
    return f"sees {sorted(seen)}"


def can(action: Callable[[], str]) -> str:
    try:
        return f"ok: {action()}"
    except Exception as exc:
        return f"FAILED: {type(exc).__name__}: {exc}"


def write(path: str) -> str:
    with open(path, "w") as file:
        file.write("mine\n")
    return f"wrote {path}"


def run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, check=True, timeout=30).stdout.decode()[:60]


t = TARGETS
results = {
    "read admin token": attempt(lambda: read(t["admin_token"])),
    "list data directory": attempt(lambda: real_entries(t["data_dir"])),
    "read log segment": attempt(lambda: read(t["segment"])),
    "write log segment": attempt(lambda: open_for_append(t["segment"])),
    "create in data directory": attempt(lambda: create(os.path.join(t["data_dir"], "evil"))),
    "read a snapshot or secret": attempt(lambda: f"listed {os.listdir(t['secrets_dir'])}"),
    "read other workspace": attempt(lambda: read(t["other_secret"])),
    "write other workspace": attempt(lambda: open_for_append(t["other_secret"])),
    "read /etc/shadow": attempt(lambda: read("/etc/shadow")),
    "write outside": attempt(lambda: create(os.path.join(t["system_dir"], "evil"))),
    "signal the server": attempt(lambda: signal_process(t["server_pid"])),
    "see the server": attempt(lambda: see_process(t["server_pid"])),
    "signal another job": attempt(lambda: signal_process(t["other_pid"])),
    "server API on loopback": attempt(connect("127.0.0.1", t["server_port"])),
    "server API through the gateway": attempt(connect("10.0.2.2", t["server_port"])),
    "metadata endpoint": attempt(connect("169.254.169.254", t["bait_port"])),
    "private address": attempt(connect(t["private_ip"], t["bait_port"])),
    "host address": attempt(connect(t["host_ip"], t["bait_port"])),
    "host unix socket": attempt(lambda: connect_unix(t["unix_socket"])),
    "run as root": attempt(is_root),
    "leave a process": attempt(lambda: leave_a_process(t["marker"])),
    "can write workspace": can(lambda: write("mine.txt")),
    "can write home": can(lambda: write(os.path.join(os.environ["HOME"], ".state"))),
    "can write tmp": can(lambda: write("/tmp/scratch")),
    "can run git": can(lambda: run(["git", "--version"])),
    "can reach allowed": can(connect(t["host_ip"], t["allowed_port"])),
}
print("PROBE " + json.dumps(results), flush=True)
