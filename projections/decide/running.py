"""Deciding a job's run: its workspace, the launch intent, the process that started, and how
it ended (exit code, timeout, loss, cancellation), including re-attachment after a restart."""

from __future__ import annotations

from projections import launches, naming
from projections.commands import (
    BeginLaunch,
    FailJob,
    MarkLost,
    Reattach,
    RecordExit,
    RecordProcessStarted,
    RecordWorkspace,
    TimeOutJob,
)
from projections.decide import common
from projections.errors import conflict
from projections.events import (
    Event,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobLaunching,
    JobLost,
    JobProcessStarted,
    JobReattached,
    JobTimedOut,
    JobWorkspaceCreated,
)
from projections.jobs import Job
from projections.lifecycle import STOPPING
from projections.state import State


def record_workspace(state: State, command: RecordWorkspace, now: float) -> list[Event]:
    found = common.job(state, command.job_id)
    why = launches.blocked(state, found)
    if why == "not_preparing":
        raise conflict(
            "not_preparing", f"job {found.job_id!r} is {found.status}: cannot take a workspace"
        )
    if why == "not_prepared":
        raise conflict(
            "not_prepared", f"job {found.job_id!r} is not prepared: cannot take a workspace"
        )
    if found.workspace is not None:
        return []
    path = naming.workspace_path(state.server.settings, command.job_id)
    return [JobWorkspaceCreated(job_id=command.job_id, path=path)]


def begin_launch(state: State, command: BeginLaunch, now: float) -> list[Event]:
    found = common.job(state, command.job_id)
    if launches.blocked(state, found) is not None or found.workspace is None:
        raise conflict("not_launchable", f"job {command.job_id!r} is {found.status}")
    if found.run_dir is not None:
        return []
    return [JobLaunching(job_id=command.job_id, run_dir=naming.run_path(command.job_id))]


def _ending(state: State, found: Job, ending: common.Ending, now: float) -> list[Event]:
    """End a job that may belong to a batch, and end the batch with its last member."""
    events = common.end_job(state, found, ending, now)
    return events + common.end_batch_if_done(state, common.batch_of(state, found), [found.job_id])


def record_process_started(state: State, command: RecordProcessStarted, now: float) -> list[Event]:
    """The deadline is fixed here, from the job's timeout and the time it started."""
    found = common.job(state, command.job_id)
    if not launches.in_flight(found):
        raise conflict("not_launching", f"job {command.job_id!r} has no launch in progress")
    common.require(found, JobProcessStarted, "not_launching", "start a process")
    return [
        JobProcessStarted(
            job_id=command.job_id,
            pid=command.pid,
            process_start_time=command.process_start_time,
            boot_id=command.boot_id,
            started_at=now,
            deadline=now + found.spec.options.timeout_seconds,
        )
    ]


def record_exit(state: State, command: RecordExit, now: float) -> list[Event]:
    """The process is gone. Asked to stop, the job ends cancelled; past its deadline it timed
    out (a kill after the deadline leaves no clean exit code); exit 0 completes, any other
    code fails, and no code at all means it was lost."""
    found = common.job(state, command.job_id)
    if found.process is None or found.terminal:
        raise conflict("not_running", f"job {command.job_id!r} has no running process")
    job_id = command.job_id
    ending: common.Ending
    if found.status in STOPPING:
        ending = JobCancelled(job_id=job_id, at=now)
    elif command.exit_code == 0:
        ending = JobCompleted(job_id=job_id, at=now)
    elif found.deadline is not None and now >= found.deadline:
        ending = JobTimedOut(job_id=job_id, at=now)
    elif command.exit_code is None:
        reason = command.reason or "the agent ended without recording an exit code"
        ending = JobLost(job_id=job_id, reason=reason, at=now)
    else:
        reason = command.reason or f"the agent exited with code {command.exit_code}"
        ending = JobFailed(job_id=job_id, reason=reason, exit_code=command.exit_code, at=now)
    return _ending(state, found, ending, now)


def fail(state: State, command: FailJob, now: float) -> list[Event]:
    found = common.job(state, command.job_id)
    if found.terminal:
        raise conflict("job_finished", f"job {command.job_id!r} already {found.status}")
    if found.process is not None:
        raise conflict("has_process", f"job {command.job_id!r} has a process: stop it first")
    if found.status in STOPPING:
        return _ending(state, found, JobCancelled(job_id=command.job_id, at=now), now)
    common.require(found, JobFailed, "job_finished", "fail")
    failure = JobFailed(job_id=command.job_id, reason=command.reason, exit_code=None, at=now)
    return _ending(state, found, failure, now)


def time_out(state: State, command: TimeOutJob, now: float) -> list[Event]:
    """Recorded once the process group is killed; only past the deadline decide gave it."""
    found = common.job(state, command.job_id)
    common.require(found, JobTimedOut, "not_running", "time out")
    if found.deadline is None or now < found.deadline:
        raise conflict("not_due", f"job {command.job_id!r} is within its deadline")
    return _ending(state, found, JobTimedOut(job_id=command.job_id, at=now), now)


def mark_lost(state: State, command: MarkLost, now: float) -> list[Event]:
    found = common.job(state, command.job_id)
    common.require(found, JobLost, "not_running", "be lost")
    if found.run_dir is None:
        raise conflict("not_launched", f"job {command.job_id!r} never launched a process")
    lost = JobLost(job_id=command.job_id, reason=command.reason, at=now)
    return _ending(state, found, lost, now)


def reattach(state: State, command: Reattach, now: float) -> list[Event]:
    found = common.job(state, command.job_id)
    common.require(found, JobReattached, "not_running", "be re-attached")
    return [JobReattached(job_id=command.job_id, boot_id=command.boot_id)]
