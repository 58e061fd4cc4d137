"""The launch-readiness rule (``projections.launches``): one rule for the shell, which finds
the launches that are due, for ``decide``, which judges every launch step with it, and for the
simulator. At every point of a job's way to running, the rule and ``decide`` agree."""

from __future__ import annotations

from projections import DomainError, decide, launches
from projections import commands as c
from tests.projections.world import World


def _due(w: World) -> list[str]:
    return [job.job_id for job in launches.due_jobs(w.state)]


def _workspace_refusal(w: World, job_id: str) -> str | None:
    try:
        decide(w.state, c.RecordWorkspace(job_id=job_id), w.now + 1)
    except DomainError as err:
        return err.code
    return None


def test_due_only_once_the_batch_is_prepared_and_until_the_intent() -> None:
    w = World().boot()
    w.queue("j1")
    job = w.state.jobs.by_id["j1"]
    assert launches.blocked(w.state, job) == "not_preparing" == _workspace_refusal(w, "j1")
    w.do(c.Dispatch())
    assert launches.blocked(w.state, job) == "not_prepared" == _workspace_refusal(w, "j1")
    assert _due(w) == []
    w.prepare("j1")
    assert launches.blocked(w.state, job) is None and _workspace_refusal(w, "j1") is None
    assert launches.due(w.state, job) and _due(w) == ["j1"]
    w.do(c.RecordWorkspace(job_id="j1"))
    assert _due(w) == ["j1"], "still due: the intent is not recorded yet"
    assert not launches.in_flight(job)
    w.do(c.BeginLaunch(job_id="j1"))
    assert _due(w) == [] and launches.in_flight(job)
    w.do(c.RecordProcessStarted(job_id="j1", pid=7, process_start_time=1.0, boot_id="b"))
    assert not launches.in_flight(job)
    assert launches.blocked(w.state, job) == "not_preparing" == _workspace_refusal(w, "j1")


def test_a_waiting_job_is_not_due_while_another_batch_holds_the_lock() -> None:
    w = World().boot()
    w.run_to_preparing("j1")
    w.queue("j2")
    w.do(c.Dispatch())
    w.prepare("j1")
    assert _due(w) == ["j1"], "j2's batch is only now preparing"
    w.prepare("j2")
    assert _due(w) == ["j1", "j2"]


def test_a_launch_stopped_while_in_flight_stays_in_flight_until_resolved() -> None:
    w = World().boot()
    w.run_to_launching("j1")
    w.do(c.CancelJob(job_id="j1"))
    job = w.state.jobs.by_id["j1"]
    assert job.status == "cancelling" and launches.in_flight(job)
    assert launches.blocked(w.state, job) == "not_preparing" and not launches.due(w.state, job)
    w.do(c.FailJob(job_id="j1", reason="cancelled before its agent started"))
    assert w.status("j1") == "cancelled" and not launches.in_flight(job)
