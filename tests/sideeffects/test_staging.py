"""Staged uploads end to end: where they land, where they go, and that none outlives its use.

Uploads land in ``staging/<job>`` (``staging.created``); the job's preparation moves them into
its workspace's ``files/`` (``staging.removed``, consumed). A job deleted before it starts,
or not started within ``staging_max_age_seconds``, loses its staging (deleted, stale); a
directory under ``staging/`` that no job in the state owns is removed by the startup sweep
(``orphan.removed``). Every removal is an event.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.sideeffects.helpers import demo_repo, log_events, serving, wait_event
from tests.support.server import RewindServer, submit, wait_for, wait_terminal

MAX_AGE = 2.0
"""staging_max_age_seconds of the test server: the stale test waits this long."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RewindServer]:
    root = tmp_path_factory.mktemp("staging")
    with serving(root / "data", staging_max_age_seconds=MAX_AGE) as started:
        demo_repo(started, root)
        yield started


@pytest.fixture
def client(server: RewindServer) -> Iterator[httpx.Client]:
    with server.client() as opened:
        yield opened


def upload(client: httpx.Client, job_id: str, **files: bytes) -> list[dict[str, object]]:
    answer = client.post(
        f"/jobs/{job_id}/files",
        files=[("file", (name, content)) for name, content in files.items()],
    )
    assert answer.status_code == 201, answer.text
    stored: list[dict[str, object]] = answer.json()
    return stored


def removals(server: RewindServer, job_id: str) -> list[str]:
    """The reasons of every removal of the job's staging, in log order."""
    path = f"staging/{job_id}"
    return [
        row["event"]["reason"]
        for row in log_events(server.data_dir, "staging.removed")
        if row["event"]["path"] == path
    ]


def test_uploads_are_staged_then_moved_into_the_workspace(
    server: RewindServer, client: httpx.Client
) -> None:
    job_id = submit(client, "--print ok --exit 0", "demo", start=False)
    stored = upload(client, job_id, **{"notes.txt": b"first", "data.bin": b"\x00\x01"})
    assert {s["name"]: s["sha256"] for s in stored} == {
        "notes.txt": hashlib.sha256(b"first").hexdigest(),
        "data.bin": hashlib.sha256(b"\x00\x01").hexdigest(),
    }
    staged = server.data_dir / "staging" / job_id
    assert (staged / "notes.txt").read_bytes() == b"first"
    assert (staged / "data.bin").read_bytes() == b"\x00\x01"
    wait_event(server.data_dir, "staging.created", job_id=job_id)
    assert client.post(f"/jobs/{job_id}/start").status_code == 200
    assert wait_terminal(client, job_id)["status"] == "completed"
    assert removals(server, job_id) == ["consumed"]
    assert not staged.exists()
    assert client.get(f"/jobs/{job_id}/files/files/notes.txt").content == b"first"
    assert client.get(f"/jobs/{job_id}/files/files/data.bin").content == b"\x00\x01"
    assert {f["name"] for f in client.get(f"/jobs/{job_id}").json()["files"]} == {
        "notes.txt",
        "data.bin",
    }


def _upload_one(server: RewindServer, job_id: str, name: str, content: bytes) -> httpx.Response:
    with server.client(timeout=120) as own:
        return own.post(f"/jobs/{job_id}/files", files=[("file", (name, content))])


def _recorded(client: httpx.Client, job_id: str) -> dict[str, str]:
    return {f["name"]: f["sha256"] for f in client.get(f"/jobs/{job_id}").json()["files"]}


def test_parallel_uploads_of_one_name_leave_on_disk_what_the_log_records(
    server: RewindServer, client: httpx.Client
) -> None:
    """Issue 14: uploads of one name at once (20 MB each, different bytes) are each answered
    201, and the file on disk is the one whose hash the log recorded last, whole; no upload's
    temp file is left. Then the job's workspace gets those same bytes."""
    job_id = submit(client, "--exit 0", "demo", start=False)
    contents = [bytes([n]) * (20 * 2**20) for n in range(4)]
    with ThreadPoolExecutor(len(contents)) as pool:
        answers = list(pool.map(lambda c: _upload_one(server, job_id, "same.bin", c), contents))
    assert [a.status_code for a in answers] == [201] * len(contents), [a.text for a in answers]
    staged = server.data_dir / "staging" / job_id
    assert os.listdir(staged) == ["same.bin"], "a temp file was left, or another name"
    on_disk = hashlib.sha256((staged / "same.bin").read_bytes()).hexdigest()
    hashes = {hashlib.sha256(c).hexdigest() for c in contents}
    assert on_disk in hashes, "the file on disk is a mix of uploads"
    logged = [
        row["event"]["sha256"]
        for row in log_events(server.data_dir, "job.file-staged")
        if row["event"]["job_id"] == job_id
    ]
    assert len(logged) == len(contents) and logged[-1] == on_disk
    assert _recorded(client, job_id) == {"same.bin": on_disk}
    assert client.post(f"/jobs/{job_id}/start").status_code == 200
    assert wait_terminal(client, job_id)["status"] == "completed"
    got = client.get(f"/jobs/{job_id}/files/files/same.bin").content
    assert hashlib.sha256(got).hexdigest() == on_disk


def test_a_start_waits_for_the_upload_in_progress(tmp_path: Path) -> None:
    """An upload frozen between writing its file and recording it holds the job: a start
    sent meanwhile waits, where it would have queued the job and let its preparation move
    into the workspace bytes the log never recorded."""
    point = "upload.written"
    with serving(tmp_path / "data", env={"REWIND_PAUSE_AT": point}) as server:
        demo_repo(server, tmp_path)
        with server.client() as client, ThreadPoolExecutor(1) as pool:
            try:
                job_id = submit(client, "--exit 0", "demo", start=False)
                pool.submit(_upload_one, server, job_id, "late.txt", b"late")
                wait_for((server.data_dir / "paused" / point).exists)
                with pytest.raises(httpx.ReadTimeout):
                    client.post(f"/jobs/{job_id}/start", timeout=2)
                assert client.get(f"/jobs/{job_id}").json()["status"] == "created"
            finally:
                server.kill()  # ends the frozen upload before the pool waits for it


def test_a_job_deleted_before_it_starts_loses_its_staging(
    server: RewindServer, client: httpx.Client
) -> None:
    job_id = submit(client, "--exit 0", "demo", start=False)
    upload(client, job_id, **{"notes.txt": b"never used"})
    assert client.delete(f"/jobs/{job_id}").status_code == 202
    wait_for(lambda: removals(server, job_id))
    assert removals(server, job_id) == ["deleted"]
    assert not (server.data_dir / "staging" / job_id).exists()


def test_staging_of_a_job_never_started_goes_stale(
    server: RewindServer, client: httpx.Client
) -> None:
    job_id = submit(client, "--exit 0", "demo", start=False)
    upload(client, job_id, **{"notes.txt": b"too late"})
    created = wait_event(server.data_dir, "staging.created", job_id=job_id)["event"]["at"]
    wait_for(lambda: removals(server, job_id), timeout=MAX_AGE + 30)
    assert removals(server, job_id) == ["stale"]
    removed = [
        row
        for row in log_events(server.data_dir, "staging.removed")
        if row["event"]["path"] == f"staging/{job_id}"
    ]
    assert removed[0]["ts"] >= created + MAX_AGE, "removed before it was stale"
    assert not (server.data_dir / "staging" / job_id).exists()
    job = client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "created" and job["files"] == [], "the job stays, without files"


def test_the_startup_sweep_removes_staging_no_job_owns(
    server: RewindServer, client: httpx.Client
) -> None:
    recorded = submit(client, "--exit 0", "demo", start=False)
    upload(client, recorded, **{"notes.txt": b"recorded"})
    known_job = submit(client, "--exit 0", "demo", start=False)
    server.kill()
    staging = server.data_dir / "staging"
    ghost = staging / "job-ghost0000000000"
    ghost.mkdir()
    (ghost / "left.txt").write_bytes(b"an upload whose recording a crash cut short")
    unrecorded = staging / known_job  # a known job, but no staging.created for it
    unrecorded.mkdir()
    (unrecorded / "left.txt").write_bytes(b"also cut short")

    server.start()
    orphans = {
        row["event"]["resource_id"]: row["event"]
        for row in log_events(server.data_dir, "orphan.removed")
    }
    assert orphans[str(ghost)]["kind"] == "staging" and orphans[str(ghost)]["job_id"] is None
    assert orphans[str(unrecorded)]["job_id"] == known_job
    assert not ghost.exists() and not unrecorded.exists()
    assert str(staging / recorded) not in orphans, "a recorded staging is not an orphan"
    with server.client() as fresh:
        report = fresh.get("/api/admin/recovery").json()["latest"]
    assert report["orphans_removed"] >= 2


def chattr(flag: str, path: Path) -> None:
    done = subprocess.run(["chattr", flag, str(path)], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(
            f"chattr {flag} failed ({done.stderr.strip()}): this test needs a filesystem with "
            "the immutable attribute (ext4, xfs, btrfs) and CAP_LINUX_IMMUTABLE",
            pytrace=False,
        )


def test_an_orphan_that_cannot_be_removed_does_not_keep_the_server_down(
    server: RewindServer,
) -> None:
    """One undeletable leftover must not stop recovery: the server starts, runs jobs, and the
    sweep removes the leftover once it can (here: at the next start)."""
    server.kill()
    stuck = server.data_dir / "staging" / "job-stuck000000000"
    stuck.mkdir(parents=True)
    (stuck / "left.txt").write_bytes(b"immutable")
    chattr("+i", stuck / "left.txt")
    try:
        server.start()
        with server.client() as client:
            job_id = submit(client, "--print alive --exit 0", "demo")
            assert wait_terminal(client, job_id)["status"] == "completed"
    finally:
        for left in (server.data_dir / "staging").glob("*job-stuck*/left.txt"):
            chattr("-i", left)
    server.kill()
    server.start()
    assert not any("job-stuck" in p.name for p in (server.data_dir / "staging").iterdir())
    removed = [row["event"]["resource_id"] for row in log_events(server.data_dir, "orphan.removed")]
    assert str(stuck) in removed
