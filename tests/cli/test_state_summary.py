"""`rewind state` without --json: a summary of the state, and one job in readable fields.

The summary is checked against counts taken from the events themselves (an oracle that never
looks at the projections), on prefixes of seeded histories.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from projections import Envelope, State, decode, evolve
from projections.plain import as_plain
from service.layout import DataDir
from tests.service.helpers import assert_one_error_line, fold, history, run_rewind
from tools.state_summary import HEAD, job_lines, summary

JOBS_LINE = re.compile(r"^jobs: (\d+) \((.*)\); (\d+) deleted, (\d+) purged$")


def _events(n: int, seed: int) -> list[Envelope]:
    return [decode(payload) for payload in history(n, seed)]


def _types(envelopes: list[Envelope]) -> list[str]:
    return [as_plain(envelope.event)["type"] for envelope in envelopes]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 1500), seed=st.integers(1, 50))
def test_summary_agrees_with_the_events(n: int, seed: int) -> None:
    envelopes = _events(n, seed)
    state = State()
    for seq, envelope in enumerate(envelopes, start=1):
        evolve(state, seq, envelope)
    lines = summary(state)
    types = _types(envelopes)
    created, deleted = types.count("job.created"), types.count("job.deleted")
    purged = types.count("job.purged")

    jobs = JOBS_LINE.match(lines[0])
    assert jobs is not None, lines[0]
    assert int(jobs.group(1)) == created - deleted
    assert int(jobs.group(3)) == deleted - purged
    assert int(jobs.group(4)) == purged
    counted = [int(part.split()[0]) for part in jobs.group(2).split(", ") if part != "none"]
    assert sum(counted) == created - deleted

    queue = next(line for line in lines if line.startswith("queue: "))
    queued = list(state.jobs.queue)
    assert queue.startswith(f"queue: {len(queued)} queued")
    for job_id in queued[:HEAD]:
        assert job_id in queue
    if len(queued) > HEAD:
        assert f"(+{len(queued) - HEAD} more)" in queue

    locks = next(line for line in lines if line.startswith("locks: "))
    assert locks.startswith(f"locks: {len(state.locks.held)} held")
    for repo, lock in state.locks.held.items():
        assert any(line.startswith(f"  {repo}: held by {lock.holder} ") for line in lines)
    boots = types.count("server.started")
    assert lines[-1].startswith("server: ") and f"; {boots} boots" in lines[-1]
    assert len(lines) <= 10 + 6, "a screenful: one line per area, one per repository"


def test_job_lines_print_times_in_utc(simulated: DataDir, payloads: list[bytes]) -> None:
    state = fold(payloads)
    job_id, job = next(iter(state.jobs.by_id.items()))
    lines = job_lines(job_id, job)
    assert lines[0] == f"job {job_id}"
    enqueued = next(line for line in lines if line.startswith("  enqueued_at: "))
    stamp = enqueued.removeprefix("  enqueued_at: ")
    assert stamp.endswith("Z") and job.enqueued_at is not None
    assert 0 <= datetime.fromisoformat(stamp).timestamp() - job.enqueued_at < 2e-6
    text = run_rewind("state", simulated.root, "--job", job_id)
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[1:] == lines


def test_a_purged_job_says_when(tmp_path: Path) -> None:
    """A deleted job leaves the state after its retention: asking for it says when, and how
    to see it before."""
    events = 6000
    root = tmp_path / "d"
    assert run_rewind("simulate", root, "--events", events).returncode == 0
    state = fold(history(events, 1))
    job_id, purged_at = next(iter(state.jobs.purged.items()))
    line = assert_one_error_line(run_rewind("state", root, "--job", job_id))
    assert line == (
        f"rewind: error: job {job_id} was purged from the state at seq {purged_at} "
        f"(it had been deleted); --at {purged_at - 1} shows it before"
    )
    before = run_rewind("state", root, "--at", purged_at - 1, "--job", job_id)
    assert before.returncode == 0 and before.stdout.splitlines()[1] == f"job {job_id}"
    never = assert_one_error_line(run_rewind("state", root, "--job", "job-nope"))
    assert never == f"rewind: error: no job 'job-nope' in the state at seq {events}"
