"""Watching agents until they end, and taking over the ones a previous process started.

One watcher per job with a process. It ends the job when the agent exits (exit 0 completes,
any other code fails, a signal fails with 128+signal), stops it on a cancel or delete request,
kills it at its deadline (written when it started, so it holds across restarts), and declares
it lost when its heartbeat goes stale. A job found at startup is first judged from its run
directory: alive with a fresh heartbeat -> re-attached; alive but stale -> killed and lost;
gone -> finished with the exit code its wrapper recorded, or lost without one. A launch
intent with no recorded process is resolved from the identity file, or launched again.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Final

import anyio

from eventlog import CorruptFileError
from projections.commands import MarkLost, Reattach, RecordExit, RecordProcessStarted, TimeOutJob
from projections.jobs import Job
from projections.lifecycle import STOPPING
from service.agents.identity import ExitStatus, ProcessIdentity, is_alive, read_exit, read_identity
from service.agents.watch import heartbeat_age, kill_group_now, terminate
from service.reconcile.launching import spawn
from service.reconcile.loop import record
from service.runtime import Runtime
from service.trees import remove_tree

log = logging.getLogger("rewind")

POLL: Final = 0.25
LAUNCH_SETTLE: Final = 15.0
"""A run directory without an identity file this young may still be a launch in progress."""


class Outcomes:
    """What taking over found, for the recovery report."""

    def __init__(self) -> None:
        self.reattached = 0
        self.finished_while_down = 0
        self.lost = 0
        self.relaunched = 0


async def start_watchers(rt: Runtime) -> None:
    for job_id in list(rt.state.jobs.attached):
        if not rt.tasks.running("launch", job_id):
            rt.tasks.start("watch", job_id, watch, rt, job_id)


async def watch(rt: Runtime, job_id: str, outcomes: Outcomes | None = None) -> None:
    identity = await take_over(rt, job_id, outcomes or Outcomes())
    if identity is not None:
        await follow(rt, job_id, identity)


async def take_over(rt: Runtime, job_id: str, outcomes: Outcomes) -> ProcessIdentity | None:
    """The identity to keep watching, once the job's process is known to be ours and alive;
    None when the job was settled here (finished, lost, relaunched)."""
    job = rt.state.jobs.get(job_id)
    if job is None or job.run_dir is None or job.terminal:
        return None
    run_dir = rt.path(job.run_dir)
    try:
        return await _take_over(rt, job, run_dir, outcomes)
    except CorruptFileError as err:  # one damaged run directory costs one job, not the server
        await record(rt, MarkLost(job_id=job_id, reason=f"its run directory is damaged: {err}"))
        outcomes.lost += 1
        return None


async def _take_over(
    rt: Runtime, job: Job, run_dir: Path, outcomes: Outcomes
) -> ProcessIdentity | None:
    job_id = job.job_id
    if job.process is None:
        found = read_identity(run_dir)
        if found is None:
            await _relaunch(rt, job_id, run_dir)
            outcomes.relaunched += 1
            return None
        await record(
            rt,
            RecordProcessStarted(
                job_id=job_id,
                pid=found.pid,
                process_start_time=found.start_time,
                boot_id=found.boot_id,
            ),
        )
        recorded = rt.state.jobs.get(job_id)
        if recorded is None or recorded.process is None:
            return None
        job = recorded
    assert job.process is not None
    identity = ProcessIdentity(job.process.pid, job.process.start_time, job.process.boot_id)
    if job_id in rt.launched:
        return identity
    if not is_alive(identity):
        ended = await _record_exit(rt, job, read_exit(run_dir), "while the server was down")
        if ended:
            outcomes.finished_while_down += 1
        else:
            outcomes.lost += 1
        return None
    age = heartbeat_age(run_dir, time.time())
    stale = rt.state.server.settings.heartbeat_stale_seconds
    if age is None or age > stale:
        kill_group_now(identity)
        await record(rt, MarkLost(job_id=job_id, reason=_stale(age)))
        outcomes.lost += 1
        return None
    await record(rt, Reattach(job_id=job_id, boot_id=rt.boot_id))
    rt.launched.add(job_id)
    outcomes.reattached += 1
    return identity


async def follow(rt: Runtime, job_id: str, identity: ProcessIdentity) -> None:
    """Poll the agent until its job ends; every way of ending is recorded here."""
    while True:
        job = rt.state.jobs.get(job_id)
        if job is None or job.terminal:
            return
        run_dir = rt.path(job.run_dir or "")
        if job.status in STOPPING:
            await terminate(identity, rt.config.kill_grace_seconds)
            await record(rt, RecordExit(job_id=job_id, exit_code=None, reason="stopped on request"))
            return
        if job.deadline is not None and time.time() >= job.deadline:
            await terminate(identity, rt.config.kill_grace_seconds)
            status = read_exit(run_dir)
            if status is not None and status.code == 0:
                await record(rt, RecordExit(job_id=job_id, exit_code=0))
            else:
                await record(rt, TimeOutJob(job_id=job_id))
            return
        if not is_alive(identity):
            await _record_exit(rt, job, read_exit(run_dir), "")
            return
        age = heartbeat_age(run_dir, time.time())
        if age is not None and age > rt.state.server.settings.heartbeat_stale_seconds:
            kill_group_now(identity)
            await record(rt, MarkLost(job_id=job_id, reason=_stale(age)))
            return
        await rt.engine.wait_change(POLL)


async def _record_exit(rt: Runtime, job: Job, status: ExitStatus | None, when: str) -> bool:
    """Record how a finished agent ended; False when it left no exit code (lost)."""
    suffix = f" {when}" if when else ""
    if status is None or (status.code is None and status.signal is None):
        detail = status.error if status and status.error else "no exit code was recorded"
        await record(
            rt,
            MarkLost(job_id=job.job_id, reason=f"the agent ended{suffix}: {detail}")
            if job.status not in STOPPING
            else RecordExit(job_id=job.job_id, exit_code=None, reason=detail),
        )
        return False
    if status.code is not None:
        code, reason = status.code, f"the agent exited with code {status.code}{suffix}"
    else:
        code = 128 + (status.signal or 0)
        reason = f"the agent was killed by signal {status.signal}{suffix}"
    await record(rt, RecordExit(job_id=job.job_id, exit_code=code, reason=reason))
    return True


async def _relaunch(rt: Runtime, job_id: str, run_dir: Path) -> None:
    """A launch intent with no agent behind it: the launch never happened (or never got as
    far as the agent). Wait out a launch that might still be starting, then launch again."""
    if run_dir.exists():
        age = time.time() - run_dir.stat().st_mtime
        if age < LAUNCH_SETTLE:
            await anyio.sleep(LAUNCH_SETTLE - age)
        if read_identity(run_dir) is not None:
            return
        await anyio.to_thread.run_sync(remove_tree, run_dir)
    await spawn(rt, job_id)


def _stale(age: float | None) -> str:
    if age is None:
        return "its heartbeat file is missing"
    return f"its heartbeat stopped {age:.0f} s ago"
