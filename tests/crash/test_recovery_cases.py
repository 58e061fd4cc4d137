"""Recovery's harder cases: a damaged repository, a damaged log, a stale lock."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from eventlog.segment import list_segments
from service.agents.identity import is_alive, read_identity
from tests.support.server import (
    REWIND,
    RewindServer,
    git_repo,
    register,
    submit,
    wait_for,
    wait_terminal,
)


def test_damaged_clone_degrades_its_repository_and_nothing_else(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = RewindServer(data_dir, max_concurrent=2).start()
    with server.client() as client:
        register(client, "api", git_repo(tmp_path / "api"))
        register(client, "web", git_repo(tmp_path / "web"))
        blocker = [submit(client, "--sleep 30", "web") for _ in range(2)]
        wait_for(
            lambda: all(client.get(f"/jobs/{j}").json()["status"] == "running" for j in blocker)
        )
        queued = submit(client, "--print never", "api")
        assert client.get(f"/jobs/{queued}").json()["status"] == "queued"
    server.stop()
    (data_dir / "repos" / "api" / ".git" / "HEAD").unlink()
    server.start()
    with server.client() as client:
        health = client.get("/health")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "degraded"
        assert any("repository api degraded" in p for p in body["problems"]), body
        repo = client.get("/repositories/api").json()
        assert repo["degraded"] and "not a git repository" in repo["degraded"], repo
        for job_id in blocker:  # the agents kept running across the stop; free their slots
            assert client.post(f"/jobs/{job_id}/cancel").status_code == 200
        failed = wait_terminal(client, queued)
        assert failed["status"] == "failed" and "degraded" in failed["error"], failed
        other = submit(client, "--print fine", "web")
        assert wait_terminal(client, other)["status"] == "completed"
        report = client.get("/api/admin/recovery").json()["latest"]
        assert report["repos_degraded"] == 1
    server.stop()


def test_corrupt_log_refuses_to_start_and_says_what_to_do(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = RewindServer(data_dir).start()
    with server.client() as client:
        register(client, "api", git_repo(tmp_path / "api"))
        for _ in range(3):
            submit(client, "--print x", "api")
    server.kill()  # no snapshot at stop: the damage lies in the part every start replays
    segment = list_segments(data_dir / "log")[-1].path
    blob = bytearray(segment.read_bytes())
    blob[200] ^= 0x40  # inside an early record, with acknowledged records after it
    segment.write_bytes(bytes(blob))
    started = subprocess.run(
        [str(REWIND), "serve", "--data-dir", str(data_dir), "--port", str(server.port)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 1, started.stdout + started.stderr  # 1: damage found
    assert "Traceback" not in started.stderr
    error = started.stderr.strip().splitlines()[-1]
    assert error.startswith("rewind: error: corrupt log"), error
    assert "rewind log verify" in error and "rewind log repair" in error
    assert str(segment) in error


def test_a_deadline_holds_across_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = RewindServer(data_dir, kill_grace_seconds=1.0).start()
    with server.client() as client:
        register(client, "api", git_repo(tmp_path / "api"))
        job_id = submit(client, "--sleep 60", "api", options={"timeoutSeconds": 4})
        wait_for(lambda: client.get(f"/jobs/{job_id}").json()["status"] == "running")
    server.kill()
    time.sleep(4)
    server.start()
    with server.client() as client:
        job = wait_terminal(client, job_id)
        assert job["status"] == "timed_out", job
    identity = read_identity(data_dir / "runs" / job_id)
    assert identity is not None and not is_alive(identity)
    server.stop()


def test_an_agent_alive_but_silent_is_killed_and_lost(tmp_path: Path) -> None:
    """Its wrapper frozen (SIGSTOP) while the server was down: alive, heartbeat stale."""
    data_dir = tmp_path / "data"
    server = RewindServer(data_dir, heartbeat_stale_seconds=2).start()
    with server.client() as client:
        register(client, "api", git_repo(tmp_path / "api"))
        job_id = submit(client, "--sleep 60", "api")
        wait_for(lambda: client.get(f"/jobs/{job_id}").json()["status"] == "running")
    server.kill()
    identity = read_identity(data_dir / "runs" / job_id)
    assert identity is not None and is_alive(identity)
    os.kill(identity.pid, signal.SIGSTOP)
    time.sleep(3)
    server.start()
    with server.client() as client:
        job = wait_terminal(client, job_id)
        assert job["status"] == "lost" and "heartbeat" in job["error"], job
        assert client.get("/api/admin/recovery").json()["latest"]["jobs_lost"] == 1
    wait_for(lambda: not is_alive(identity), timeout=10)
    server.stop()


def test_a_server_whose_recovery_fails_exits_instead_of_lingering(tmp_path: Path) -> None:
    """Recovery raises (a fault injected at its start): the server must stop with a non-zero
    exit and say why, not stay up unready for ever."""
    data_dir = tmp_path / "data"
    server = RewindServer(data_dir, env={"REWIND_FAIL_AT": "recovery.started"}).start(wait=False)
    assert server.process is not None
    assert server.process.wait(timeout=60) == 3
    assert "rewind: error: the server stopped: InjectedFailureError" in server.output()
