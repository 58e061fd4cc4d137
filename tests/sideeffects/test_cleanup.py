"""Workspace cleanup end to end, with the server killed (SIGKILL) at each step of it.

A job with ``autoCleanup`` whose agent modified a tracked file and added an untracked one ends;
the server freezes at a pause point of the cleanup (REWIND_PAUSE_AT), the test kills it there
and starts it again without the pause. Whatever the step, the restarted server finishes the
cleanup: the workspace is gone, the agent's work is in ``archive/<job>`` (a patch and a tar
of the untracked file), and the log records ``cleanup.completed`` exactly once.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.sideeffects.helpers import demo_repo, log_events, serving, wait_event
from tests.support.server import RewindServer, submit, wait_for, wait_terminal

CHANGES = "--write README.md=changed-by-agent --write new.txt=untracked-by-agent --exit 0"
POINTS = ("cleanup.started", "cleanup.archived", "cleanup.removed")


def workspace(server: RewindServer, job_id: str) -> Path:
    return server.data_dir / "workspaces" / job_id


def archive(server: RewindServer, job_id: str) -> Path:
    return server.data_dir / "archive" / job_id


def cleanup_events(server: RewindServer, path: str) -> list[str]:
    return [
        row["type"]
        for row in log_events(server.data_dir)
        if row["type"].startswith("cleanup.") and row["event"].get("path") == path
    ]


def assert_cleaned(server: RewindServer, job_id: str, *, archived: bool) -> None:
    """The cleanup of the job's workspace is over, exactly once, with the archive or not."""
    path = f"workspaces/{job_id}"
    assert not workspace(server, job_id).exists(), "the workspace is still there"
    types = cleanup_events(server, path)
    assert types.count("cleanup.marked") == 1, types
    assert types.count("cleanup.completed") == 1, types
    assert types[-1] == "cleanup.completed", types
    assert "cleanup.failed" not in types, types
    if not archived:
        assert not archive(server, job_id).exists()
        assert "cleanup.archived" not in types
        return
    assert types.count("cleanup.archived") == 1, types
    kept = archive(server, job_id)
    patch = (kept / "changes.patch").read_text()
    assert "a/README.md" in patch and "+changed-by-agent" in patch
    with tarfile.open(fileobj=io.BytesIO((kept / "untracked.tar").read_bytes())) as tar:
        assert tar.getnames() == ["new.txt"]
        member = tar.extractfile("new.txt")
        assert member is not None and member.read() == b"untracked-by-agent"
    assert (kept / "manifest.json").is_file(), "the archive is complete"


def applies_to_the_original(server: RewindServer, job_id: str, tmp_path: Path) -> None:
    """The archived patch is usable: it applies to a clone of the repository."""
    copy = tmp_path / f"check-{job_id}"
    subprocess.run(
        ["git", "clone", "-q", str(tmp_path / "demo-src"), str(copy)], check=True, timeout=60
    )
    subprocess.run(
        ["git", "apply", str(archive(server, job_id) / "changes.patch")],
        cwd=copy,
        check=True,
        timeout=60,
    )
    assert (copy / "README.md").read_text() == "changed-by-agent"


@pytest.mark.parametrize("point", POINTS)
def test_cleanup_killed_at_each_step_is_finished_after_restart(tmp_path: Path, point: str) -> None:
    with serving(tmp_path / "data", env={"REWIND_PAUSE_AT": point}) as server:
        demo_repo(server, tmp_path)
        with server.client() as client:
            job_id = submit(client, CHANGES, "demo", options={"autoCleanup": True})
            assert wait_terminal(client, job_id)["status"] == "completed"
        wait_for((server.data_dir / "paused" / point).exists)
        # Frozen exactly at that step: what is done and what is not yet.
        assert workspace(server, job_id).exists() == (point != "cleanup.removed")
        assert archive(server, job_id).exists() == (point != "cleanup.started")
        with pytest.raises(AssertionError):
            assert_cleaned(server, job_id, archived=True)  # the check sees an unfinished one
        server.kill()

        server.env = {k: v for k, v in server.env.items() if k != "REWIND_PAUSE_AT"}
        (server.data_dir / "paused" / point).unlink()
        server.start()
        wait_event(server.data_dir, "cleanup.completed", path=f"workspaces/{job_id}")
        assert_cleaned(server, job_id, archived=True)
        with server.client() as client:
            report = client.get("/api/admin/recovery").json()["latest"]
            assert report["cleanups_resumed"] == 1
            assert client.get(f"/jobs/{job_id}").json()["status"] == "completed"
            assert client.get(f"/jobs/{job_id}/output").status_code == 200
        assert (server.data_dir / "runs" / job_id).is_dir(), "auto-cleanup keeps the run dir"
        assert not (server.data_dir / "paused" / point).exists(), "it did not pause again"
    applies_to_the_original(server, job_id, tmp_path)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RewindServer]:
    root = tmp_path_factory.mktemp("cleanup")
    with serving(root / "data") as started:
        demo_repo(started, root)
        yield started


@pytest.fixture
def client(server: RewindServer) -> Iterator[httpx.Client]:
    with server.client() as opened:
        yield opened


def test_a_workspace_without_changes_leaves_no_archive(
    server: RewindServer, client: httpx.Client
) -> None:
    job_id = submit(
        client, "--print nothing-to-keep --exit 0", "demo", options={"autoCleanup": True}
    )
    wait_terminal(client, job_id)
    wait_event(server.data_dir, "cleanup.completed", path=f"workspaces/{job_id}")
    assert_cleaned(server, job_id, archived=False)


def test_without_auto_cleanup_the_workspace_stays(
    server: RewindServer, client: httpx.Client
) -> None:
    job_id = submit(client, CHANGES, "demo")
    wait_terminal(client, job_id)
    assert client.get(f"/jobs/{job_id}/files/new.txt").text == "untracked-by-agent"
    assert workspace(server, job_id).is_dir()
    assert cleanup_events(server, f"workspaces/{job_id}") == []


def test_deleting_a_finished_job_removes_its_workspace_and_run_directory(
    server: RewindServer, client: httpx.Client
) -> None:
    job_id = submit(client, CHANGES, "demo")
    wait_terminal(client, job_id)
    assert (server.data_dir / "runs" / job_id).is_dir()
    answer = client.delete(f"/jobs/{job_id}")
    assert answer.status_code == 202, answer.text
    assert client.get(f"/jobs/{job_id}").status_code == 404
    wait_event(server.data_dir, "cleanup.completed", path=f"runs/{job_id}")
    wait_event(server.data_dir, "cleanup.completed", path=f"workspaces/{job_id}")
    assert_cleaned(server, job_id, archived=True)
    assert not (server.data_dir / "runs" / job_id).exists()
    marked = {
        row["event"]["path"]: row["event"]["reason"]
        for row in log_events(server.data_dir, "cleanup.marked")
        if row["event"]["job_id"] == job_id
    }
    assert marked == {f"workspaces/{job_id}": "deleted", f"runs/{job_id}": "deleted"}
    assert cleanup_events(server, f"runs/{job_id}").count("cleanup.completed") == 1


def test_deleting_a_running_job_stops_it_then_removes_everything(
    server: RewindServer, client: httpx.Client
) -> None:
    job_id = submit(client, "--write new.txt=untracked-by-agent --sleep 60", "demo")
    wait_for(lambda: client.get(f"/jobs/{job_id}").json()["status"] == "running")
    wait_for((workspace(server, job_id) / "new.txt").exists)  # the agent has done its work
    assert client.delete(f"/jobs/{job_id}").status_code == 202
    wait_event(server.data_dir, "job.deleted", job_id=job_id)
    wait_event(server.data_dir, "cleanup.completed", path=f"runs/{job_id}")
    wait_event(server.data_dir, "cleanup.completed", path=f"workspaces/{job_id}")
    assert not workspace(server, job_id).exists()
    assert not (server.data_dir / "runs" / job_id).exists()
    assert client.get(f"/jobs/{job_id}").status_code == 404
    assert (archive(server, job_id) / "untracked.tar").is_file()


def chattr(flag: str, *paths: Path) -> None:
    """Set or clear the immutable flag: even root cannot delete an immutable file."""
    argv = ["chattr", flag, *map(str, paths)]
    done = subprocess.run(argv, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(
            f"chattr {flag} failed ({done.stderr.strip()}): this test needs a filesystem with "
            "the immutable attribute (ext4, xfs, btrfs) and CAP_LINUX_IMMUTABLE",
            pytrace=False,
        )


def test_a_cleanup_that_fails_is_recorded_and_retried_with_backoff(
    server: RewindServer, client: httpx.Client
) -> None:
    """An immutable file makes the removal fail: ``cleanup.failed`` with the error and a retry
    time, no retry before it; once the file can go, the retry finishes the cleanup."""
    job_id = submit(
        client,
        "--write new.txt=untracked-by-agent --sleep 1.5 --exit 0",
        "demo",
        options={"autoCleanup": True},
    )
    wait_for(lambda: client.get(f"/jobs/{job_id}").json()["status"] == "running")
    stuck = workspace(server, job_id) / "README.md"
    chattr("+i", stuck)
    try:
        wait_terminal(client, job_id)
        failed = wait_event(server.data_dir, "cleanup.failed", path=f"workspaces/{job_id}")
        assert "README.md" in failed["event"]["error"], failed
        assert failed["event"]["next_retry_at"] >= failed["ts"] + 1.0, "no backoff"
        time.sleep(1.0)
        types = cleanup_events(server, f"workspaces/{job_id}")
        assert types.count("cleanup.failed") == 1, f"retried before its time: {types}"
    finally:
        for left in server.data_dir.glob("workspaces/*/README.md"):
            chattr("-i", left)
        for left in server.data_dir.glob("workspaces/.*/README.md"):
            chattr("-i", left)
    wait_event(server.data_dir, "cleanup.completed", path=f"workspaces/{job_id}", timeout=60)
    types = cleanup_events(server, f"workspaces/{job_id}")
    assert types == ["cleanup.marked", "cleanup.archived", "cleanup.failed", "cleanup.completed"]
    assert not workspace(server, job_id).exists()
    assert [p.name for p in (server.data_dir / "workspaces").iterdir() if job_id in p.name] == []
    assert (archive(server, job_id) / "untracked.tar").is_file()
