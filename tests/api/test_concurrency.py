"""Issue 9's concurrency rules under load: 50 jobs on 3 repositories, max_concurrent = 5, real
fake agents that sleep a little and some that fail with an exit code.

The run happens once (module fixture); its event log is then judged as a whole by
`schedule_checks` (slots, one preparation per repository, FIFO), the project's own invariants
are run on the folded state, and every job's end is compared with what its agent did. The
checker itself is shown to catch each rule broken in a copy of this very history.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from projections import check
from tests.api.helpers import log_events, replay
from tests.api.schedule_checks import Row, follow, rows
from tests.support.server import RewindServer, git_repo, register, submit

MAX = 5
JOBS = 50
REPOS = ("alpha", "beta", "gamma")


def _plan(n: int) -> tuple[str, int, str]:
    """Job n's repository, exit code and prompt. Jobs 20-29 all go to the first repository;
    every 7th job fails with 3, every 11th with 42."""
    repo = REPOS[0] if 20 <= n < 30 else REPOS[n % 3]
    code = 3 if n % 7 == 3 else 42 if n % 11 == 5 else 0
    return repo, code, f"--print job-{n} --sleep {0.05 * (n % 4 + 1):.2f} --exit {code}"


@dataclass
class Run:
    started: list[str]
    """Job ids in the order the test started them."""
    exits: dict[str, int]
    final: dict[str, dict[str, Any]]
    """Each job as GET /jobs showed it at the end."""
    samples: list[dict[str, int]]
    """Jobs by status, as /health counted them while the run went on."""
    history: list[Row]
    data_dir: Path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("concurrency")
    server = RewindServer(tmp / "data", max_concurrent=MAX).start()
    try:
        admin = server.client()
        # a slow index step on one repository: its jobs pile up behind its lock and are batched
        slow = {"indexCommand": ["sleep", "0.3"]}
        for name in REPOS:
            register(admin, name, git_repo(tmp / name), settings=slow if name == REPOS[0] else {})
        started, exits = [], {}
        for n in range(JOBS):
            repo, code, prompt = _plan(n)
            job = submit(admin, prompt, repo)
            started.append(job)
            exits[job] = code
        samples: list[dict[str, int]] = []
        deadline = time.monotonic() + 120
        while True:
            counts: dict[str, int] = admin.get("/health").json()["jobs"]
            samples.append(counts)
            if counts["completed"] + counts["failed"] == JOBS:
                break
            assert time.monotonic() < deadline, f"jobs not finished in time: {counts}"
            time.sleep(0.2)
        final = {j["id"]: j for j in admin.get("/jobs", params={"limit": 500}).json()["jobs"]}
        server.stop()
        yield Run(
            started, exits, final, samples, rows(log_events(server.data_dir)), server.data_dir
        )
    finally:
        server.kill()


def test_every_job_ends_as_its_agent_did(run: Run) -> None:
    assert set(run.final) == set(run.started)
    for job, code in run.exits.items():
        shown = run.final[job]
        if code == 0:
            assert (shown["status"], shown["exitCode"]) == ("completed", 0), shown
        else:
            assert (shown["status"], shown["exitCode"]) == ("failed", code), shown
    assert sum(1 for code in run.exits.values() if code) >= 8


def test_the_log_shows_no_rule_broken(run: Run) -> None:
    schedule = follow(run.history, MAX)
    assert schedule.violations == []
    assert schedule.enqueued == run.started, "the run queue is in the order of the starts"
    assert sorted(schedule.dispatched) == sorted(run.started)
    assert schedule.peak_slots == MAX, "the run never filled the slots: nothing was tested"
    sizes = [len(e["job_ids"]) for _, e in run.history if e["type"] == "batch.formed"]
    assert max(sizes) > 1, "no batch shared a preparation: batching was not exercised"
    assert sum(sizes) == JOBS


def test_the_api_never_showed_more_than_max_concurrent(run: Run) -> None:
    for counts in run.samples:
        holding = sum(counts[s] for s in ("waiting", "preparing", "running", "cancelling"))
        assert holding <= MAX, counts
    assert len(run.samples) > 5


def test_the_folded_state_keeps_the_invariants(run: Run) -> None:
    *_, (_, last, state) = replay(run.data_dir)
    assert type(last.event).__name__ == "ServerStopping", "a clean stop is the last event"
    assert check(state) == []
    assert state.anomalies == []
    assert not state.locks.held and not state.batches.active and not state.jobs.active
    assert {state.jobs.by_id[j].exit_code for j in run.started} == set(run.exits.values())


# --- the checker catches each rule broken in a copy of this history ------------------------


def _index(history: list[Row], kind: str, **match: Any) -> list[int]:
    return [
        i
        for i, (_, e) in enumerate(history)
        if e["type"] == kind and all(e.get(k) == v for k, v in match.items())
    ]


def test_a_slot_too_many_is_caught(run: Run) -> None:
    """The same history judged against one slot fewer: the run did use the fifth."""
    assert any("hold a slot" in v for v in follow(run.history, MAX - 1).violations)


def test_two_preparations_of_one_repository_are_caught(run: Run) -> None:
    """Move a batch's `batch.prepared` after the next `batch.formed` of its repository."""
    history = list(run.history)
    formed = _index(history, "batch.formed", repo=REPOS[0])
    first = history[formed[0]][1]["batch_id"]
    (prepared,) = _index(history, "batch.prepared", batch_id=first)
    moved = history.pop(prepared)
    history.insert(formed[1], moved)
    violations = follow(history, MAX).violations
    assert any(f"prepares {REPOS[0]!r} while {first}" in v for v in violations), violations


def test_a_batch_out_of_fifo_order_is_caught(run: Run) -> None:
    """Swap the members of two batches of one repository."""
    history = list(run.history)
    a, b = _index(history, "batch.formed", repo=REPOS[1])[:2]
    (sa, ea), (sb, eb) = history[a], history[b]
    history[a] = (sa, {**ea, "job_ids": eb["job_ids"]})
    history[b] = (sb, {**eb, "job_ids": ea["job_ids"]})
    violations = follow(history, MAX).violations
    assert any(f"{REPOS[1]!r} prepared out of order" in v for v in violations), violations


def test_a_dispatch_out_of_queue_order_is_caught(run: Run) -> None:
    """Swap which of two queued jobs of one repository was enqueued first: the one dispatched
    first now jumps the queue."""
    history = list(run.history)
    enqueued = {e["job_id"]: i for i, (_, e) in enumerate(history) if e["type"] == "job.enqueued"}
    left: dict[str, int] = {}
    for i, (_, e) in enumerate(history):
        if e["type"] == "job.waiting":
            left.setdefault(e["job_id"], i)
        elif e["type"] == "batch.formed":
            for job in e["job_ids"]:
                left.setdefault(job, i)
    mine = [j for j in run.started if _plan(run.started.index(j))[0] == REPOS[2]]
    a, b = next(
        (x, y) for x, y in itertools.pairwise(mine) if enqueued[y] < left[x]
    )  # both were in the queue at once
    i, j = enqueued[a], enqueued[b]
    history[i], history[j] = (history[i][0], history[j][1]), (history[j][0], history[i][1])
    violations = follow(history, MAX).violations
    assert any("left the run queue out of order" in v for v in violations), violations
    assert any(f"{REPOS[2]!r} left the queue out of order" in v for v in violations)


def test_a_dispatch_of_a_job_never_queued_is_caught(run: Run) -> None:
    """Drop one job's `job.enqueued`: it still leaves a queue it never joined."""
    history = list(run.history)
    job = run.started[10]
    history = [
        (seq, e) for seq, e in history if (e["type"], e.get("job_id")) != ("job.enqueued", job)
    ]
    violations = follow(history, MAX).violations
    assert any(f"{job} left the run queue without being queued" in v for v in violations)
