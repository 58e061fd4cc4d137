"""How a job can end besides its agent's exit: cancelled (even an agent that ignores SIGTERM:
SIGKILL after the grace period), timed out, deleted while running. In every case the agent's
whole process group is gone afterwards, and the end is what the API and the log say."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from service.agents import procfs
from tests.api.helpers import assert_problem, state_at
from tests.support.server import RewindServer, git_repo, register, submit, wait_for, wait_terminal

GRACE = 1.5


@dataclass
class Served:
    server: RewindServer
    admin: httpx.Client


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("endings")
    server = RewindServer(tmp / "data", kill_grace_seconds=GRACE).start()
    try:
        admin = server.client()
        register(admin, "demo", git_repo(tmp / "src"))
        yield Served(server, admin)
    finally:
        server.kill()


def _running(served: Served, prompt: str, **body: Any) -> tuple[str, int]:
    """A started job once its agent has set itself up (its signal disposition included) and
    printed `ready`; its process group id (the wrapper's pid)."""
    job = submit(served.admin, f"{prompt} --print ready", "demo", **body)
    wait_for(lambda: served.admin.get(f"/jobs/{job}/output").text.startswith("ready"))
    wait_for(lambda: served.admin.get(f"/jobs/{job}").json()["status"] == "running")
    events = served.admin.get(f"/jobs/{job}/events").json()
    pid: int = next(e["event"]["pid"] for e in events if e["type"] == "job.process-started")
    assert procfs.group_members(pid), "the agent's group runs"
    return job, pid


def test_cancel_stops_even_an_agent_that_ignores_sigterm(served: Served) -> None:
    admin = served.admin
    job, group = _running(served, "--ignore-term --sleep 60")
    asked = time.monotonic()
    answer = admin.post(f"/jobs/{job}/cancel")
    assert answer.status_code == 200 and answer.json()["status"] == "cancelling"
    ended = wait_terminal(admin, job)
    assert ended["status"] == "cancelled" and ended["exitCode"] is None
    assert time.monotonic() - asked >= GRACE * 0.9, "SIGKILL came before the grace period"
    assert procfs.group_members(group) == [], "a process of the cancelled agent survived"
    assert admin.post(f"/jobs/{job}/cancel").status_code == 409


def test_a_job_past_its_timeout_is_timed_out(served: Served) -> None:
    admin = served.admin
    job, group = _running(served, "--sleep 60", options={"timeoutSeconds": 3})
    ended = wait_terminal(admin, job)
    assert ended["status"] == "timed_out", ended
    assert 3 <= ended["endedAt"] - ended["startedAt"] < 10
    assert procfs.group_members(group) == []
    assert admin.get(f"/jobs/{job}/output").text == "ready\n"


def test_deleting_a_running_job_stops_it_and_hides_it(served: Served) -> None:
    admin = served.admin
    job, group = _running(served, "--sleep 60")
    answer = admin.delete(f"/jobs/{job}")
    assert answer.status_code == 202 and answer.json()["status"] == "deleting"
    wait_for(lambda: admin.get(f"/jobs/{job}").status_code == 404)
    assert_problem(admin.get(f"/jobs/{job}"), 404)
    assert job not in {j["id"] for j in admin.get("/jobs", params={"limit": 500}).json()["jobs"]}
    assert procfs.group_members(group) == []
    found = state_at(served.server.data_dir).jobs.get(job)
    assert found is not None and found.deleted and found.status == "cancelled"


def test_cancelling_a_queued_or_created_job_ends_it_at_once(served: Served) -> None:
    admin = served.admin
    created = submit(admin, "--print never", "demo", start=False)
    assert admin.post(f"/jobs/{created}/cancel").json()["status"] == "cancelled"
    assert admin.get(f"/jobs/{created}/output").content == b""
    assert_problem(admin.post(f"/jobs/{created}/start"), 409)


def test_a_followed_job_deleted_midway_ends_its_stream_cleanly(served: Served) -> None:
    """The stream ends with an `end` event, as for any other ending, not cut off."""
    admin = served.admin
    job, _ = _running(served, "--lines 100 --interval 0.1")
    seen: list[tuple[str, Any]] = []
    kind = ""
    with (
        served.server.client() as follower,
        follower.stream("GET", f"/jobs/{job}/output", params={"follow": "1"}) as answer,
    ):
        for line in answer.iter_lines():
            if line.startswith("event:"):
                kind = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                seen.append((kind, json.loads(line.removeprefix("data:"))))
                if len(seen) == 1:
                    assert admin.delete(f"/jobs/{job}").status_code == 202
    assert seen[0][0] == "output"
    assert seen[-1] == ("end", {"status": "deleted", "exitCode": None}), seen[-3:]
