"""Deciding how a job's agent ended, from what the shell saw of it.

The shell reports observations only (``RecordExit``: the process is gone, the wrapper
recorded this exit or nothing, the shell stopped it itself, at startup or not;
``RecordStaleHeartbeat``; ``RecordDamagedRunDir``). This module alone maps them to an
ending, in this order:

    the job was asked to stop (cancel, delete)             -> cancelled, however it ended
    exit code 0                                            -> completed
    past its deadline, and an exit recorded or the shell
      stopped it there (a kill leaves no clean exit code)  -> timed out
    no exit recorded (the wrapper died or failed)          -> lost
    any other exit code N / a signal S                     -> failed (N / 128 + S)
    a heartbeat stale by ``liveness.heartbeat_stale``      -> lost
    a damaged run directory                                -> lost

Every reason is written here; "while the server was down" marks what was found at startup.
"""

from __future__ import annotations

from typing import Final

from projections import liveness
from projections.commands import RecordDamagedRunDir, RecordExit, RecordStaleHeartbeat
from projections.decide import common
from projections.errors import conflict
from projections.events import (
    Event,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobLost,
    JobTimedOut,
)
from projections.jobs import Job
from projections.lifecycle import STOPPING
from projections.state import State

NO_EXIT: Final = "no exit code was recorded"


def record_exit(state: State, command: RecordExit, now: float) -> list[Event]:
    found = common.job(state, command.job_id)
    if found.process is None or found.terminal:
        raise conflict("not_running", f"job {command.job_id!r} has no running process")
    return common.end_with_batch(state, found, exit_ending(found, command, now), now)


def exit_ending(found: Job, seen: RecordExit, now: float) -> common.Ending:
    """How a job whose agent is gone ended (the table in the module's docstring)."""
    job_id = found.job_id
    recorded = seen.code is not None or seen.signal is not None
    if found.status in STOPPING:
        return JobCancelled(job_id=job_id, at=now)
    if seen.code == 0:
        return JobCompleted(job_id=job_id, at=now)
    if liveness.past_deadline(found, now) and (recorded or seen.stopped == "deadline"):
        return JobTimedOut(job_id=job_id, at=now)
    when = " while the server was down" if seen.while_down else ""
    if seen.code is not None:
        reason = f"the agent exited with code {seen.code}{when}"
        return JobFailed(job_id=job_id, reason=reason, exit_code=seen.code, at=now)
    if seen.signal is not None:
        reason = f"the agent was killed by signal {seen.signal}{when}"
        return JobFailed(job_id=job_id, reason=reason, exit_code=128 + seen.signal, at=now)
    return JobLost(job_id=job_id, reason=f"the agent ended{when}: {seen.note or NO_EXIT}", at=now)


def record_stale_heartbeat(state: State, command: RecordStaleHeartbeat, now: float) -> list[Event]:
    found = _losable(state, command.job_id)
    age = command.heartbeat_age
    if not liveness.heartbeat_stale(state.server.settings, age):
        raise conflict("heartbeat_fresh", f"job {command.job_id!r} beat {age:.0f} s ago")
    why = (
        "its heartbeat file is missing" if age is None else f"its heartbeat stopped {age:.0f} s ago"
    )
    return common.end_with_batch(
        state, found, JobLost(job_id=found.job_id, reason=why, at=now), now
    )


def record_damaged_run_dir(state: State, command: RecordDamagedRunDir, now: float) -> list[Event]:
    found = _losable(state, command.job_id)
    why = f"its run directory is damaged: {command.error}"
    return common.end_with_batch(
        state, found, JobLost(job_id=found.job_id, reason=why, at=now), now
    )


def _losable(state: State, job_id: str) -> Job:
    """A job that launched (or began to) and may still be lost."""
    found = common.job(state, job_id)
    common.require(found, JobLost, "not_running", "be lost")
    if found.run_dir is None:
        raise conflict("not_launched", f"job {job_id!r} never launched a process")
    return found
