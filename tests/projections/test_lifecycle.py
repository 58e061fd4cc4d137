"""The one job transition table: its shape, and that decide and the folds both obey it.

Each job status is reached through ``decide`` (``World``); then every event the table knows is
folded onto it by hand. A pair the table forbids must leave the status as it was and record
an anomaly naming the job; a pair it allows must move the job where the table says.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final, get_args

import pytest

from projections import DomainError, State, check, decide, encode_state
from projections import commands as c
from projections.events import (
    EVENT_TYPES,
    BatchFailed,
    BatchFormed,
    Event,
    JobCancelled,
    JobCancelRequested,
    JobCompleted,
    JobCreated,
    JobDeleted,
    JobDeleteRequested,
    JobEnqueued,
    JobFailed,
    JobFileStaged,
    JobLaunching,
    JobLost,
    JobProcessStarted,
    JobPurged,
    JobReattached,
    JobTimedOut,
    JobWaiting,
    JobWorkspaceCreated,
    StagingCreated,
    tag_of,
)
from projections.lifecycle import (
    ACTIVE,
    STOPPING,
    TERMINAL,
    TRANSITIONS,
    JobStatus,
    allowed_from,
    next_status,
)
from tests.projections.world import World

STATUSES: Final[tuple[JobStatus, ...]] = get_args(JobStatus)
KEEPERS: Final = {JobDeleted, JobPurged}
"""The only events that may happen to a finished job; they leave it as it is."""


def world_with(status: JobStatus) -> World:
    """A world whose job ``j`` is in ``status``, reached through decide alone."""
    w = World().boot()
    if status == "created":
        w.create("j")
    elif status == "queued":
        w.queue("j")
    elif status == "waiting":
        w.run_to_preparing("first")
        w.queue("j")
        w.do(c.Dispatch())
    elif status == "preparing":
        w.run_to_preparing("j")
    elif status == "cancelled":
        w.queue("j")
        w.do(c.CancelJob(job_id="j"))
    else:
        w.run_to_running("j", timeout_seconds=60.0)
        if status == "cancelling":
            w.do(c.CancelJob(job_id="j"))
        elif status == "deleting":
            w.do(c.DeleteJob(job_id="j"))
        elif status == "completed":
            w.do(c.RecordExit(job_id="j", code=0))
        elif status == "failed":
            w.do(c.RecordExit(job_id="j", code=2))
        elif status == "timed_out":
            w.do(c.RecordExit(job_id="j", signal=15, stopped="deadline"), advance=60.0)
        elif status == "lost":
            w.do(c.RecordStaleHeartbeat(job_id="j", heartbeat_age=None))
    assert w.status("j") == status
    return w


def event_for(cls: type[Event], state: State) -> Event:
    """A hand-made ``cls`` event about job ``j`` (and, for a batch, a new batch of it)."""
    at = 99_999.0
    makers: dict[type[Event], Callable[[], Event]] = {
        JobFileStaged: lambda: JobFileStaged(job_id="j", name="f", size=1, sha256="0" * 64),
        StagingCreated: lambda: StagingCreated(path="staging/other", job_id="j", at=at),
        JobEnqueued: lambda: JobEnqueued(job_id="j", at=at),
        JobWaiting: lambda: JobWaiting(job_id="j", repo="api"),
        BatchFormed: lambda: BatchFormed(
            batch_id="batch-hand",
            repo="api",
            job_ids=["j"],
            generation=state.locks.next_generation("api"),
            lease_expires_at=at,
        ),
        JobWorkspaceCreated: lambda: JobWorkspaceCreated(job_id="j", path="workspaces/j"),
        JobLaunching: lambda: JobLaunching(job_id="j", run_dir="run"),
        JobProcessStarted: lambda: JobProcessStarted(
            job_id="j", pid=1, process_start_time=1.0, boot_id="b", started_at=at, deadline=at
        ),
        JobReattached: lambda: JobReattached(job_id="j", boot_id="b"),
        JobCompleted: lambda: JobCompleted(job_id="j", at=at),
        JobFailed: lambda: JobFailed(job_id="j", reason="r", exit_code=1, at=at),
        BatchFailed: lambda: BatchFailed(
            batch_id=state.jobs.by_id["j"].batch_id or "batch-none", error="e", at=at
        ),
        JobTimedOut: lambda: JobTimedOut(job_id="j", at=at),
        JobCancelRequested: lambda: JobCancelRequested(job_id="j", at=at),
        JobDeleteRequested: lambda: JobDeleteRequested(job_id="j", at=at),
        JobCancelled: lambda: JobCancelled(job_id="j", at=at),
        JobLost: lambda: JobLost(job_id="j", reason="r", at=at),
        JobDeleted: lambda: JobDeleted(job_id="j", at=at),
        JobPurged: lambda: JobPurged(job_id="j"),
    }
    return makers[cls]()


# -- the table's shape ----------------------------------------------------------------------


def test_statuses_partition_into_pending_active_terminal() -> None:
    assert not ACTIVE & TERMINAL
    assert set(STATUSES) == ACTIVE | TERMINAL | {"created", "queued"}
    assert STOPPING <= ACTIVE
    assert {"completed", "failed", "timed_out", "cancelled", "lost"} == TERMINAL


def test_the_table_speaks_only_of_known_events_and_statuses() -> None:
    assert set(TRANSITIONS) <= set(EVENT_TYPES)
    for row in TRANSITIONS.values():
        assert set(row) | set(row.values()) <= set(STATUSES)


def test_every_job_event_but_creation_is_in_the_table() -> None:
    job_events = {cls for cls in EVENT_TYPES if tag_of(cls).startswith("job.")}
    assert job_events - set(TRANSITIONS) == {JobCreated}


@pytest.mark.parametrize("status", sorted(TERMINAL))
def test_a_terminal_status_has_no_exit(status: JobStatus) -> None:
    """Only deletion and purge may touch a finished job, and they leave its status."""
    for event, row in TRANSITIONS.items():
        if event in KEEPERS:
            assert row[status] == status
        else:
            assert status not in row, f"{tag_of(event)} leaves {status}"


def test_no_event_leads_back_to_created_or_queued() -> None:
    """No resurrection, no re-queueing: the run queue only takes jobs from created."""
    for event, row in TRANSITIONS.items():
        for before, after in row.items():
            if after in ("created", "queued"):
                assert before == after or (before, after, event) == (
                    "created",
                    "queued",
                    JobEnqueued,
                )


def _reachable(start: JobStatus) -> set[JobStatus]:
    seen = {start}
    todo = deque([start])
    while todo:
        status = todo.popleft()
        for row in TRANSITIONS.values():
            after = row.get(status)
            if after is not None and after not in seen:
                seen.add(after)
                todo.append(after)
    return seen


def test_every_status_is_reachable_from_created() -> None:
    assert _reachable("created") == set(STATUSES)


@pytest.mark.parametrize("status", sorted(set(STATUSES) - TERMINAL))
def test_every_unfinished_status_can_finish(status: JobStatus) -> None:
    assert _reachable(status) & TERMINAL


def test_next_status_reads_the_table() -> None:
    assert next_status("created", JobEnqueued) == "queued"
    assert next_status("completed", JobFailed) is None
    assert next_status("queued", JobEnqueued) is None
    assert allowed_from(JobCompleted) == {"running"}


# -- the folds obey it ----------------------------------------------------------------------

PAIRS: Final = [(status, event) for status in STATUSES for event in TRANSITIONS]
ILLEGAL: Final = [
    (status, event)
    for status, event in PAIRS
    if next_status(status, event) is None and event is not BatchFailed
]
"""``batch.failed`` fails the members still preparing and leaves the others (a member
cancelled during the preparation is already finished): it filters rather than objects."""
LEGAL: Final = [(s, e) for s, e in PAIRS if next_status(s, e) is not None]


def _id(pair: tuple[JobStatus, type[Event]]) -> str:
    return f"{pair[0]}-{tag_of(pair[1])}"


@pytest.mark.parametrize("pair", ILLEGAL, ids=[_id(p) for p in ILLEGAL])
def test_an_event_the_table_forbids_is_an_anomaly(pair: tuple[JobStatus, type[Event]]) -> None:
    status, event = pair
    w = world_with(status)
    assert check(w.state) == []
    w.fold(event_for(event, w.state))
    assert w.status("j") == status, "the fold never applies a forbidden move"
    problems = check(w.state)
    assert any(f"cannot happen to job 'j' ({status})" in p for p in problems), problems


@pytest.mark.parametrize("pair", LEGAL, ids=[_id(p) for p in LEGAL])
def test_an_event_the_table_allows_moves_the_job_where_it_says(
    pair: tuple[JobStatus, type[Event]],
) -> None:
    status, event = pair
    w = world_with(status)
    w.fold(event_for(event, w.state))
    if event is JobPurged:
        assert "j" not in w.state.jobs.by_id and "j" in w.state.jobs.purged
        return
    assert w.status("j") == next_status(status, event)
    assert not any("cannot happen to job" in p for p in check(w.state))


def test_batch_failed_fails_exactly_the_members_still_preparing() -> None:
    w = World().boot()
    w.run_to_preparing("first")
    w.queue("x")
    w.queue("y")
    w.do(c.Dispatch())
    w.prepare("first")
    w.do(c.CancelJob(job_id="x"))
    w.queue("z")
    w.do(c.Dispatch())
    assert (w.status("x"), w.status("y"), w.status("z")) == ("cancelled", "preparing", "waiting")
    w.fold(BatchFailed(batch_id=w.batch_of("y"), error="e", at=1.0))
    assert check(w.state) == []
    assert w.status("y") == "failed"
    assert w.status("x") == "cancelled", "already finished: left alone"
    assert w.status("z") == "waiting", "not a member"


# -- decide obeys it ------------------------------------------------------------------------

JOB_COMMANDS: Final[tuple[c.Command, ...]] = (
    c.StartStaging(job_id="j"),
    c.StageFile(job_id="j", name="f", size=1, sha256="0" * 64),
    c.StartJob(job_id="j"),
    c.Dispatch(),
    c.RecordWorkspace(job_id="j"),
    c.BeginLaunch(job_id="j"),
    c.RecordProcessStarted(job_id="j", pid=9, process_start_time=2.0, boot_id="b"),
    c.Reattach(job_id="j", boot_id="b"),
    c.RecordExit(job_id="j", code=0),
    c.RecordExit(job_id="j", code=1),
    c.RecordExit(job_id="j"),
    c.RecordExit(job_id="j", signal=9, stopped="deadline"),
    c.RecordExit(job_id="j", code=0, while_down=True),
    c.FailJob(job_id="j", reason="r"),
    c.RecordStaleHeartbeat(job_id="j", heartbeat_age=None),
    c.RecordDamagedRunDir(job_id="j", error="r"),
    c.CancelJob(job_id="j"),
    c.DeleteJob(job_id="j"),
)


@pytest.mark.parametrize("status", STATUSES)
def test_decide_only_moves_a_job_along_the_table(status: JobStatus) -> None:
    """Every job command in every status: refused (state untouched), or its events fold
    with no anomaly and every status change is a step of the table."""
    for command in JOB_COMMANDS:
        for late in (0.0, 3600.0):
            w = world_with(status)
            if status == "preparing" and isinstance(command, c.RecordWorkspace):
                w.prepare("j")
            before = encode_state(w.state)
            try:
                events = decide(w.state, command, w.now + late)
            except DomainError:
                assert encode_state(w.state) == before
                continue
            w.now += late
            for event in events:
                old = w.state.jobs.by_id["j"].status
                w.fold(event)
                assert check(w.state) == [], (status, command, event)
                new = w.state.jobs.by_id["j"].status
                if new != old:
                    assert next_status(old, type(event)) == new, (status, command, event)
