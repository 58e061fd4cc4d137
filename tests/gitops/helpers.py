"""Real git repositories, crash residue and process inspection for the gitops tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from service.run_command import TARGET_VAR

REPO_ROOT = Path(__file__).resolve().parents[2]
_ENV = {
    **{key: value for key, value in os.environ.items() if not key.startswith("GIT_")},
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` the way a user would (plain CLI), return stdout."""
    result = subprocess.run(
        ["git", "-C", str(repo), *args], env=_ENV, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"git {args}: {result.stderr}"
    return result.stdout.strip()


def make_upstream(path: Path, files: dict[str, str] | None = None) -> str:
    """A repository with one commit on `main`; returns the commit."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    return commit(path, files or {"README.md": "hello\n", "src/app.py": "print('hi')\n"})


def commit(repo: Path, files: dict[str, str], message: str = "change") -> str:
    for name, text in files.items():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def tagged_pids(target: Path) -> list[int]:
    """Live (non-zombie) processes tagged with `target` by service.run_command."""
    wanted = os.fsencode(f"{TARGET_VAR}={target}")
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry.name}/environ").read_bytes()
            state = Path(f"/proc/{entry.name}/stat").read_bytes().rpartition(b")")[2].split()[0]
        except OSError:
            continue
        if wanted in environ.split(b"\0") and state not in (b"Z", b"X"):
            found.append(int(entry.name))
    return found


def start_orphan(target: Path) -> subprocess.Popen[bytes]:
    """A process that looks like a git a crashed call left running on `target`."""
    orphan = subprocess.Popen(
        ["sleep", "300"],
        env={**os.environ, TARGET_VAR: str(target)},
        start_new_session=True,
    )
    wait_for(lambda: orphan.pid in tagged_pids(target))  # environ is readable once exec is done
    return orphan


def python_child(
    code: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A Python process running `code` with the project importable (a server stand-in)."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=REPO_ROOT,
        env=env if env is not None else dict(os.environ),
        start_new_session=True,
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll `predicate()` until true (fails the test after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a child started in its own session (and what else is in its group), reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
