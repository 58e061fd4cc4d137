"""The real server as a subprocess, for API, restart and crash tests.

`RewindServer` runs `rewind serve` on a data directory with a config whose `fake` agent is
the fake agent (`tests/support/fake_agent.py`) obeying its prompt: a job's prompt says what
the agent prints, writes, how long it sleeps and how it exits (`--print hi --sleep 2 --exit
3`). The server can be stopped (SIGTERM), killed (SIGKILL) and started again on the same data
directory and port. `git_repo` makes a real repository to register.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fake_agent import sandboxed_agent_argv

ROOT = Path(__file__).resolve().parents[2]
REWIND = ROOT / ".venv" / "bin" / "rewind"
ADMIN_TOKEN = "rw_test-admin-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def config_text(agents: Mapping[str, Mapping[str, Any]] | None = None, **settings: Any) -> str:
    """A TOML config with the fake agent as `fake` (and default agent of test repos), plus
    `agents` (name -> its table, e.g. `{"command": [...], "network": False}`)."""
    lines = [f"{key} = {_toml(value)}" for key, value in settings.items()]
    lines += [
        "",
        "[agents.fake]",
        f"command = [{', '.join(_toml(a) for a in sandboxed_agent_argv())}, "
        '"--obey-prompt", "--", "{prompt}"]',
    ]
    for name, table in (agents or {}).items():
        lines += ["", f"[agents.{name}]"]
        lines += [f"{key} = {_toml(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_toml(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return str(value)


class RewindServer:
    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        **settings: Any,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.config = data_dir.parent / f"{data_dir.name}.toml"
        quick = {"reconcile_interval": 0.2, "heartbeat_interval": 0.5}
        self.config.write_text(config_text(**{**quick, **settings}))
        self.env = {**os.environ, "REWIND_ADMIN_TOKEN": ADMIN_TOKEN, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"{data_dir.name}.log"

    def start(self, *, wait: bool = True) -> RewindServer:
        assert self.process is None or self.process.poll() is not None, "already running"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(REWIND),
                    "serve",
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    str(self.port),
                    "--config",
                    str(self.config),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        """Until /health says the server finished recovering (ready or degraded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"server exited {self.process.returncode}:\n{self.output()}")
            try:
                body: dict[str, Any] = httpx.get(f"{self.base_url}/health", timeout=2).json()
            except (httpx.HTTPError, ValueError):
                time.sleep(0.05)
                continue
            if body.get("status") in ("ready", "degraded"):
                return body
            time.sleep(0.05)
        raise AssertionError(f"server not ready in {timeout}s:\n{self.output()}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM: a clean stop (server.stopping, snapshot)."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> int:
        """SIGKILL: a crash."""
        return self._signal(signal.SIGKILL, 30.0)

    def _signal(self, sig: int, timeout: float) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def client(self, token: str = ADMIN_TOKEN, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )


def git_repo(path: Path, files: Mapping[str, str] | None = None) -> Path:
    """A real git repository with one commit on `main`."""
    path.mkdir(parents=True)
    for name, text in (files or {"README.md": "# demo\n"}).items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "GIT_CONFIG_GLOBAL": "/dev/null",
    }
    for argv in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *argv], cwd=path, env=env, check=True)
    return path


def wait_for(check: Any, timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll `check()` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s")


def register(client: httpx.Client, name: str, url: Path | str, **extra: Any) -> dict[str, Any]:
    """Register a repository and wait until its clone is ready."""
    answer = client.post("/repositories", json={"name": name, "gitUrl": str(url), **extra})
    assert answer.status_code == 202, answer.text
    return wait_for(  # type: ignore[no-any-return]
        lambda: (r := client.get(f"/repositories/{name}").json())["cloneStatus"] == "ready" and r
    )


def submit(
    client: httpx.Client, prompt: str, repository: str, *, start: bool = True, **body: Any
) -> str:
    """Create a job with the fake agent (and start it); its id."""
    answer = client.post(
        "/jobs", json={"prompt": prompt, "repository": repository, "agent": "fake", **body}
    )
    assert answer.status_code == 201, answer.text
    job_id: str = answer.json()["id"]
    if start:
        started = client.post(f"/jobs/{job_id}/start")
        assert started.status_code == 200, started.text
    return job_id


def wait_terminal(client: httpx.Client, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    terminal = {"completed", "failed", "timed_out", "cancelled", "lost"}
    return wait_for(  # type: ignore[no-any-return]
        lambda: (j := client.get(f"/jobs/{job_id}").json()).get("status") in terminal and j,
        timeout,
    )


@pytest.fixture
def rewind_server(tmp_path: Path) -> Iterator[RewindServer]:
    """A started server on a fresh data directory; stopped (or killed) afterwards."""
    server = RewindServer(tmp_path / "data").start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.kill()
