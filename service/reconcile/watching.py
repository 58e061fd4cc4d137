"""Watching agents until they end, and taking over the ones a previous process started.

One watcher per job with a process. It observes and acts, and reports what it saw; how the
job ended is ``decide``'s judgement (``projections.decide.endings``). It stops the agent on a
cancel or delete request and at its deadline (written when it started, so it holds across
restarts), kills it when its heartbeat is stale (``projections.liveness``), and reports the
exit its wrapper recorded once the agent is gone. A job found at startup is first looked at
from its run directory: alive with a fresh heartbeat -> re-attached; alive but stale ->
killed, reported stale; gone -> its exit reported as found "while the server was down". A
launch intent with no recorded process is resolved from the identity file, or launched again.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Final

import anyio

from eventlog import CorruptFileError
from projections import launches, liveness
from projections.commands import (
    AgentStop,
    Reattach,
    RecordDamagedRunDir,
    RecordExit,
    RecordStaleHeartbeat,
)
from projections.jobs import Job
from projections.lifecycle import STOPPING
from service.agents.identity import ExitStatus, ProcessIdentity, is_alive, read_exit, read_identity
from service.agents.watch import heartbeat_age, kill_group_now, terminate
from service.reconcile.launching import record_started, spawn
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
        await record(rt, RecordDamagedRunDir(job_id=job_id, error=str(err)))
        outcomes.lost += 1
        return None


async def _take_over(
    rt: Runtime, job: Job, run_dir: Path, outcomes: Outcomes
) -> ProcessIdentity | None:
    job_id = job.job_id
    if launches.in_flight(job):
        found = read_identity(run_dir)
        if found is None:
            await _relaunch(rt, job_id, run_dir)
            outcomes.relaunched += 1
            return None
        await record_started(rt, job_id, found)
        recorded = rt.state.jobs.get(job_id)
        if recorded is None or recorded.process is None:
            return None
        job = recorded
    assert job.process is not None
    identity = ProcessIdentity(job.process.pid, job.process.start_time, job.process.boot_id)
    if job_id in rt.launched:
        return identity
    if not is_alive(identity):
        status = read_exit(run_dir)
        await record(rt, _exit_seen(job_id, status, while_down=True))
        if _recorded(status):
            outcomes.finished_while_down += 1
        else:
            outcomes.lost += 1
        return None
    age = heartbeat_age(run_dir, time.time())
    if liveness.heartbeat_stale(rt.state.server.settings, age):
        kill_group_now(identity)
        await record(rt, RecordStaleHeartbeat(job_id=job_id, heartbeat_age=age))
        outcomes.lost += 1
        return None
    await record(rt, Reattach(job_id=job_id, boot_id=rt.boot_id))
    rt.launched.add(job_id)
    outcomes.reattached += 1
    return identity


async def follow(rt: Runtime, job_id: str, identity: ProcessIdentity) -> None:
    """Poll the agent until its job ends, reporting what ended it: the shell stops the agent
    when its job is to stop or its deadline has come, kills it when its heartbeat is stale,
    and ``decide`` judges each report. A heartbeat not made yet (a launch that has just
    started) is no sign of anything here."""
    while True:
        job = rt.state.jobs.get(job_id)
        if job is None or job.terminal:
            return
        run_dir = rt.path(job.run_dir or "")
        if job.status in STOPPING:
            await terminate(identity, rt.config.kill_grace_seconds)
            await record(rt, RecordExit(job_id=job_id, stopped="request"))
            return
        if liveness.past_deadline(job, time.time()):
            await terminate(identity, rt.config.kill_grace_seconds)
            await record(rt, _exit_seen(job_id, read_exit(run_dir), stopped="deadline"))
            return
        if not is_alive(identity):
            await record(rt, _exit_seen(job_id, read_exit(run_dir)))
            return
        age = heartbeat_age(run_dir, time.time())
        if age is not None and liveness.heartbeat_stale(rt.state.server.settings, age):
            kill_group_now(identity)
            await record(rt, RecordStaleHeartbeat(job_id=job_id, heartbeat_age=age))
            return
        await rt.engine.wait_change(POLL)


def _exit_seen(
    job_id: str,
    status: ExitStatus | None,
    *,
    stopped: AgentStop | None = None,
    while_down: bool = False,
) -> RecordExit:
    """The report of an agent found gone: what its wrapper's exit file says (None: it left
    none), and what the shell did or knew besides."""
    if status is None:
        return RecordExit(job_id=job_id, stopped=stopped, while_down=while_down)
    return RecordExit(
        job_id=job_id,
        code=status.code,
        signal=status.signal,
        note=status.error,
        stopped=stopped,
        while_down=while_down,
    )


def _recorded(status: ExitStatus | None) -> bool:
    """The wrapper recorded how the agent ended (a code or a signal)."""
    return status is not None and (status.code is not None or status.signal is not None)


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
