"""Deciding a job's run: its workspace, the launch intent, the process that started, its
re-attachment after a restart, and a launch that failed. How a running agent ended is
``endings``'s."""

from __future__ import annotations

from projections import launches, naming
from projections.commands import (
    BeginLaunch,
    FailJob,
    Reattach,
    RecordProcessStarted,
    RecordWorkspace,
)
from projections.decide import common
from projections.errors import conflict
from projections.events import (
    Event,
    JobCancelled,
    JobFailed,
    JobLaunching,
    JobProcessStarted,
    JobReattached,
    JobWorkspaceCreated,
)
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


def fail(state: State, command: FailJob, now: float) -> list[Event]:
    found = common.job(state, command.job_id)
    if found.terminal:
        raise conflict("job_finished", f"job {command.job_id!r} already {found.status}")
    if found.process is not None:
        raise conflict("has_process", f"job {command.job_id!r} has a process: stop it first")
    if found.status in STOPPING:
        return common.end_with_batch(state, found, JobCancelled(job_id=command.job_id, at=now), now)
    common.require(found, JobFailed, "job_finished", "fail")
    failure = JobFailed(job_id=command.job_id, reason=command.reason, exit_code=None, at=now)
    return common.end_with_batch(state, found, failure, now)


def reattach(state: State, command: Reattach, now: float) -> list[Event]:
    found = common.job(state, command.job_id)
    common.require(found, JobReattached, "not_running", "be re-attached")
    return [JobReattached(job_id=command.job_id, boot_id=command.boot_id)]
