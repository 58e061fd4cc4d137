"""How a job ended, judged by ``decide`` alone from what the shell saw (``decide.endings``):
every observation the shell reports, in every status a job with a process can be in, within
and past its deadline, at startup or not. And the liveness rule the shell acts on."""

from __future__ import annotations

from typing import Final

import pytest

from projections import commands as c
from projections import liveness
from projections.decide.endings import exit_ending
from projections.events import (
    JobCancelled,
    JobCompleted,
    JobDeleted,
    JobFailed,
    JobLost,
    JobTimedOut,
    ServerSettings,
)
from projections.lifecycle import JobStatus
from tests.projections.test_lifecycle import world_with
from tests.projections.world import SETTINGS, World

TIMEOUT: Final = 60.0
NO_EXIT: Final = "the agent ended: no exit code was recorded"

SEEN: Final[dict[str, c.RecordExit]] = {
    "exit 0": c.RecordExit(job_id="j", code=0),
    "exit 3": c.RecordExit(job_id="j", code=3),
    "signal 9": c.RecordExit(job_id="j", signal=9),
    "no exit": c.RecordExit(job_id="j"),
    "no exit, the wrapper says why": c.RecordExit(job_id="j", note="exec failed"),
    "stopped at the deadline, no exit": c.RecordExit(job_id="j", stopped="deadline"),
    "stopped at the deadline, signal 15": c.RecordExit(job_id="j", signal=15, stopped="deadline"),
    "stopped on request, no exit": c.RecordExit(job_id="j", stopped="request"),
}
RUNNING_WITHIN: Final[dict[str, tuple[type, str | None, int | None]]] = {
    "exit 0": (JobCompleted, None, None),
    "exit 3": (JobFailed, "the agent exited with code 3", 3),
    "signal 9": (JobFailed, "the agent was killed by signal 9", 137),
    "no exit": (JobLost, NO_EXIT, None),
    "no exit, the wrapper says why": (JobLost, "the agent ended: exec failed", None),
    "stopped at the deadline, no exit": (JobLost, NO_EXIT, None),
    "stopped at the deadline, signal 15": (JobFailed, "the agent was killed by signal 15", 143),
    "stopped on request, no exit": (JobLost, NO_EXIT, None),
}
"""A running job within its deadline (the shell never stops one at its deadline early, but
the mapping is total)."""
RUNNING_PAST: Final[dict[str, tuple[type, str | None, int | None]]] = {
    "exit 0": (JobCompleted, None, None),
    "exit 3": (JobTimedOut, None, None),
    "signal 9": (JobTimedOut, None, None),
    "no exit": (JobLost, NO_EXIT, None),
    "no exit, the wrapper says why": (JobLost, "the agent ended: exec failed", None),
    "stopped at the deadline, no exit": (JobTimedOut, None, None),
    "stopped at the deadline, signal 15": (JobTimedOut, None, None),
    "stopped on request, no exit": (JobLost, NO_EXIT, None),
}
"""Past its deadline: a recorded exit other than 0, or a stop at the deadline, is a time-out
(the kill leaves no clean code); an agent that vanished with no exit recorded is lost."""


def _job_with_process(status: JobStatus) -> World:
    w = World().boot()
    w.run_to_running("j", timeout_seconds=TIMEOUT)
    if status == "cancelling":
        w.do(c.CancelJob(job_id="j"))
    elif status == "deleting":
        w.do(c.DeleteJob(job_id="j"))
    assert w.status("j") == status
    return w


@pytest.mark.parametrize("past", [False, True], ids=["within", "past the deadline"])
@pytest.mark.parametrize("name", list(SEEN))
def test_a_running_job(name: str, past: bool) -> None:
    w = _job_with_process("running")
    now = w.state.jobs.by_id["j"].deadline or 0.0
    now += 0.0 if past else -1.0
    ending = exit_ending(w.state.jobs.by_id["j"], SEEN[name], now)
    kind, reason, exit_code = (RUNNING_PAST if past else RUNNING_WITHIN)[name]
    assert type(ending) is kind
    assert getattr(ending, "reason", None) == reason
    assert getattr(ending, "exit_code", None) == exit_code
    assert ending.at == now


@pytest.mark.parametrize("status", ["cancelling", "deleting"])
@pytest.mark.parametrize("past", [False, True], ids=["within", "past the deadline"])
@pytest.mark.parametrize("name", list(SEEN))
def test_a_job_asked_to_stop_is_cancelled_however_it_ended(
    name: str, past: bool, status: JobStatus
) -> None:
    w = _job_with_process(status)
    if past:
        w.now = (w.state.jobs.by_id["j"].deadline or 0.0) + 1.0
    events = w.do(SEEN[name])
    assert isinstance(events[0], JobCancelled)
    assert (JobDeleted in [type(e) for e in events]) is (status == "deleting")


@pytest.mark.parametrize(
    ("seen", "reason"),
    [
        (c.RecordExit(job_id="j", code=2, while_down=True), "exited with code 2 while the server"),
        (c.RecordExit(job_id="j", signal=9, while_down=True), "by signal 9 while the server was"),
        (c.RecordExit(job_id="j", while_down=True), "ended while the server was down: no exit"),
    ],
)
def test_found_ended_at_startup_says_so(seen: c.RecordExit, reason: str) -> None:
    w = _job_with_process("running")
    [ending, *_] = w.do(seen)
    assert isinstance(ending, JobFailed | JobLost) and reason in ending.reason


@pytest.mark.parametrize("status", ["created", "queued", "waiting", "preparing", "completed"])
def test_no_process_no_exit(status: JobStatus) -> None:
    if status == "preparing":
        w = World().boot()
        w.run_to_launching("j")  # launch intent recorded, no process yet
    else:
        w = world_with(status)
    assert w.status("j") == status
    w.refuse(c.RecordExit(job_id="j", code=0), "conflict", "not_running")


def test_a_stale_heartbeat_is_lost_a_fresh_one_refused() -> None:
    limit = SETTINGS.heartbeat_stale_seconds
    w = _job_with_process("running")
    w.refuse(c.RecordStaleHeartbeat(job_id="j", heartbeat_age=limit), "conflict", "heartbeat_fresh")
    [lost, *_] = w.do(c.RecordStaleHeartbeat(job_id="j", heartbeat_age=limit + 1))
    assert lost == JobLost(
        job_id="j", reason=f"its heartbeat stopped {limit + 1:.0f} s ago", at=w.now
    )
    w = _job_with_process("cancelling")
    [lost, *_] = w.do(c.RecordStaleHeartbeat(job_id="j", heartbeat_age=None))
    assert lost == JobLost(job_id="j", reason="its heartbeat file is missing", at=w.now)


def test_the_liveness_rule() -> None:
    settings = ServerSettings(heartbeat_stale_seconds=120.0)
    assert liveness.heartbeat_stale(settings, None), "no heartbeat file"
    assert not liveness.heartbeat_stale(settings, 120.0)
    assert liveness.heartbeat_stale(settings, 120.5)
    w = _job_with_process("running")
    job = w.state.jobs.by_id["j"]
    assert job.deadline == (job.started_at or 0.0) + TIMEOUT
    assert not liveness.past_deadline(job, job.deadline - 0.001)
    assert liveness.past_deadline(job, job.deadline)
    w.run_to_launching("k")
    assert not liveness.past_deadline(w.state.jobs.by_id["k"], 1e12), "no process, no deadline"
