"""Statistics end to end: GET /stats agrees with the jobs that ran, is the same after kill -9
(rebuilt from the log alone: nothing is kept aside), and a queued job gets an estimated start
once its repository and agent have a median run time."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.sideeffects.helpers import demo_repo, serving
from tests.support.server import RewindServer, submit, wait_for, wait_terminal


def nearest_rank(values: list[float], percentile: float) -> float | None:
    """The textbook nearest-rank percentile, written here independently of projections/."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(percentile / 100 * len(ordered)) - 1]


def expected_stats(jobs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """What /stats must say, computed from the jobs as GET /jobs shows them."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for key in {(job["repository"], job["agent"]) for job in jobs}:
        mine = [job for job in jobs if (job["repository"], job["agent"]) == key]
        ended = [job for job in mine if job["endedAt"] is not None]
        completed = [job for job in ended if job["status"] == "completed"]
        runs = [job["endedAt"] - job["startedAt"] for job in completed]
        waits = [job["startedAt"] - job["enqueuedAt"] for job in mine if job["startedAt"]]
        rows[key] = {
            "jobs": len(ended),
            "successRate": len(completed) / len(ended) if ended else None,
            "runTimeP50": nearest_rank(runs, 50),
            "runTimeP90": nearest_rank(runs, 90),
            "queueWaitP50": nearest_rank(waits, 50),
            "queueWaitP90": nearest_rank(waits, 90),
        }
    return rows


def stats_of(client: httpx.Client) -> dict[tuple[str, str], dict[str, Any]]:
    answer = client.get("/stats")
    assert answer.status_code == 200, answer.text
    return {(row.pop("repository"), row.pop("agent")): row for row in answer.json()}


def assert_consistent(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        if value is None:
            assert actual[name] is None, name
        else:
            assert actual[name] == pytest.approx(value, abs=1e-6), name


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RewindServer]:
    with serving(tmp_path / "data", max_concurrent=1) as started:
        for name in ("demo", "other", "blocker"):
            demo_repo(started, tmp_path, name)
        yield started


def block(client: httpx.Client) -> str:
    """A long job on its own repository that takes the only slot (max_concurrent = 1)."""
    job_id = submit(client, "--sleep 60", "blocker")
    wait_for(lambda: client.get(f"/jobs/{job_id}").json()["status"] == "running")
    return job_id


def test_stats_follow_what_ran_and_survive_restarts(server: RewindServer) -> None:
    with server.client() as client:
        blocker = block(client)
        queued = submit(client, "--sleep 0.3 --exit 0", "demo")
        job = client.get(f"/jobs/{queued}").json()
        assert (job["status"], job["queuePosition"]) == ("queued", 1)
        assert job["estimatedStartAt"] is None, "no median yet, so no estimate"
        assert client.post(f"/jobs/{blocker}/cancel").status_code == 200
        ran = [queued]
        for prompt, repo in (
            ("--sleep 1.0 --exit 0", "demo"),
            ("--print bad --exit 3", "demo"),
            ("--sleep 0.2 --exit 0", "other"),
        ):
            ran.append(submit(client, prompt, repo))
            wait_terminal(client, ran[-1])
        statuses = [wait_terminal(client, job_id)["status"] for job_id in ran]
        assert statuses == ["completed", "completed", "failed", "completed"]

        demo = stats_of(client)[("demo", "fake")]
        runs = sorted(
            (j := client.get(f"/jobs/{job_id}").json())["endedAt"] - j["startedAt"]
            for job_id in ran[:2]
        )
        assert demo["jobs"] == 3 and demo["successRate"] == pytest.approx(2 / 3)
        assert demo["runTimeP50"] == pytest.approx(runs[0]) and runs[0] >= 0.3
        assert demo["runTimeP90"] == pytest.approx(runs[1]) and runs[1] >= 1.0

        block(client)
        before = time.time()
        waiting = submit(client, "--exit 0", "demo")
        job = client.get(f"/jobs/{waiting}").json()
        after = time.time()
        assert job["queuePosition"] == 1
        median = stats_of(client)[("demo", "fake")]["runTimeP50"]
        assert before + median - 1 <= job["estimatedStartAt"] <= after + median + 1
        for job_id in (waiting, *(j["id"] for j in client.get("/jobs").json()["jobs"])):
            if client.get(f"/jobs/{job_id}").json()["status"] in ("queued", "running"):
                client.post(f"/jobs/{job_id}/cancel")
        jobs = [wait_terminal(client, j["id"]) for j in client.get("/jobs").json()["jobs"]]
        expected = expected_stats(jobs)
        shown = stats_of(client)
        assert (
            shown.keys()
            == expected.keys()
            == {
                ("demo", "fake"),
                ("other", "fake"),
                ("blocker", "fake"),
            }
        )
        for key, row in expected.items():
            assert_consistent(shown[key], row)

    server.kill()
    server.start()
    with server.client() as client:
        report = client.get("/api/admin/recovery").json()["latest"]
        assert report["snapshot_seq"] is None, "rebuilt from the log alone"
        assert stats_of(client) == shown, "kill -9 changed the statistics"
