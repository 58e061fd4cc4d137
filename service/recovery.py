"""Startup recovery: after the log is open and the state loaded, bring everything back to
where it was, with the same code normal operation uses, and report what was done.

Each step is a small idempotent function; a crash inside recovery simply means the next
start runs it again on a state that already holds whatever was recorded before the crash.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable

from eventlog import Recovery
from projections import locks, naming
from projections.commands import (
    CompleteRecovery,
    DegradeRepo,
    ReleaseStaleLock,
    RestoreRepo,
)
from projections.events import RecoveryReport
from service import git
from service.reconcile import sidecars, staging
from service.reconcile.loop import record
from service.reconcile.watching import Outcomes, follow, take_over
from service.runtime import Runtime
from service.state_store import LoadReport
from service.testhooks import pause_point

log = logging.getLogger("rewind")


async def recover(rt: Runtime, opened: Recovery, loaded: LoadReport) -> RecoveryReport:
    """Run every recovery step, record ``recovery.completed`` and return its report."""
    phases: dict[str, float] = {"load": loaded.seconds}
    outcomes = Outcomes()
    state = rt.state
    preparations = sum(1 for b in state.batches.active.values() if b.phase == "preparing")
    callbacks = len(state.callbacks.pending)
    cleanups = len(state.cleanup.pending)

    async def timed(name: str, step: Callable[[Runtime], Awaitable[int]]) -> int:
        started = time.perf_counter()
        result = await step(rt)
        phases[name] = time.perf_counter() - started
        return result

    await pause_point("recovery.started", rt.data_dir.root)
    await timed("processes", functools.partial(_take_over_processes, outcomes=outcomes))
    locks = await timed("locks", _release_stale_locks)
    degraded = await timed("repositories", _check_repositories)
    orphans = await timed("orphans", _sweep)
    report = RecoveryReport(
        phases=phases,
        snapshot_seq=loaded.snapshot_seq,
        snapshots_skipped=loaded.skipped_snapshots,
        events_replayed=loaded.events_replayed,
        torn_bytes_cut=opened.torn_bytes,
        zero_fill_trimmed=opened.zero_fill_bytes,
        jobs_reattached=outcomes.reattached,
        jobs_finished_while_down=outcomes.finished_while_down,
        jobs_lost=outcomes.lost,
        jobs_relaunched=outcomes.relaunched,
        preparations_redone=preparations,
        locks_released=locks,
        callbacks_resumed=callbacks,
        cleanups_resumed=cleanups,
        orphans_removed=orphans,
        repos_degraded=degraded,
    )
    await rt.engine.execute(CompleteRecovery(report=report), actor="recovery")
    log.info("%s", summary(report))
    return report


async def _take_over_processes(rt: Runtime, outcomes: Outcomes) -> int:
    for job_id in list(rt.state.jobs.attached):
        identity = await take_over(rt, job_id, outcomes)
        if identity is not None:
            rt.tasks.start("watch", job_id, follow, rt, job_id, identity)
    return outcomes.reattached


async def _release_stale_locks(rt: Runtime) -> int:
    """A lock no live preparation or clone holds is released and handed on (FIFO)."""
    released = 0
    for repo in locks.stale(rt.state):
        if await record(rt, ReleaseStaleLock(repo=repo)) is not None:
            released += 1
    return released


async def _check_repositories(rt: Runtime) -> int:
    """A damaged clone degrades its repository (its waiting jobs fail, the rest stays up);
    a degraded repository whose clone is healthy again is restored."""
    degraded = 0
    for repo in list(rt.state.repos.by_name.values()):
        if repo.clone != "ready":
            continue
        damage = await git.check_health(rt.path(naming.clone_path(repo.name)))
        if damage is not None and repo.degraded is None:
            await record(rt, DegradeRepo(repo=repo.name, reason=damage))
            degraded += 1
        elif damage is None and repo.degraded is not None:
            await record(rt, RestoreRepo(repo=repo.name))
    return degraded


async def _sweep(rt: Runtime) -> int:
    removed = await staging.sweep_orphans(rt)
    removed += await rt.repo_secrets.sweep_orphans(rt.state.repos.by_name)
    try:
        removed += await sidecars.sweep_orphans(rt)
    except Exception as err:  # Docker trouble must not keep the server down
        log.warning("container sweep skipped: %s", err)
    return removed


def summary(report: RecoveryReport) -> str:
    """One screen an operator reads at startup."""
    phases = ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in report.phases.items())
    snapshot = f"snapshot at seq {report.snapshot_seq}" if report.snapshot_seq else "no snapshot"
    return (
        "recovery completed\n"
        f"  state: {snapshot}, {report.events_replayed} events replayed, "
        f"{report.torn_bytes_cut} torn bytes cut, {len(report.snapshots_skipped)} snapshots "
        "skipped\n"
        f"  jobs: {report.jobs_reattached} re-attached, {report.jobs_finished_while_down} "
        f"finished while down, {report.jobs_lost} lost, {report.jobs_relaunched} relaunched, "
        f"{report.preparations_redone} preparations redone\n"
        f"  locks released {report.locks_released}, callbacks resumed "
        f"{report.callbacks_resumed}, cleanups resumed {report.cleanups_resumed}, orphans "
        f"removed {report.orphans_removed}, repositories degraded {report.repos_degraded}\n"
        f"  phases: {phases}"
    )
