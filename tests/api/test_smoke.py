"""The product's promise in one test: a job submitted over HTTP runs its agent in a copy of a
real repository, and a kill -9 of the server in the middle neither loses nor restarts it."""

from __future__ import annotations

from pathlib import Path

from tests.support.server import RewindServer, git_repo, register, submit, wait_for, wait_terminal


def test_job_survives_kill_9_of_the_server(rewind_server: RewindServer, tmp_path: Path) -> None:
    client = rewind_server.client()
    register(client, "demo", git_repo(tmp_path / "src"))
    # alive well past a restart (several seconds on a loaded 2-core machine): re-attached, not
    # found finished
    job_id = submit(client, "--lines 6 --interval 0.5 --write out.txt=done --sleep 6", "demo")
    wait_for(lambda: client.get(f"/jobs/{job_id}").json()["status"] == "running")
    pid_before = client.get(f"/jobs/{job_id}/events").json()
    rewind_server.kill()
    rewind_server.start()
    client = rewind_server.client()
    job = wait_terminal(client, job_id)
    assert job["status"] == "completed", job
    output = client.get(f"/jobs/{job_id}/output").text
    assert output.count("line 1\n") == 1, "the agent ran once: re-attached, not restarted"
    assert "line 6" in output
    assert client.get(f"/jobs/{job_id}/files/out.txt").text == "done"
    types = [e["type"] for e in client.get(f"/jobs/{job_id}/events").json()]
    assert types.count("job.process-started") == 1 and "job.reattached" in types
    assert len(pid_before) < len(types)
    report = client.get("/api/admin/recovery").json()["latest"]
    assert report["jobs_reattached"] == 1
