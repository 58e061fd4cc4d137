"""`rewind state` for a person: what the server holds, in a screenful, not 7 000 lines of JSON.

A thin reading of `State`: one small function per line, each touching only the fields it shows,
so a change of a projection's shape changes one line here. `--json` keeps the whole state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, get_args

import msgspec

from projections import State
from projections.events import BatchPhase
from projections.jobs import Job
from projections.lifecycle import JobStatus
from projections.plain import as_plain
from tools.output import utc

HEAD = 5
"""Ids listed per line (queue heads, waiters); the rest are counted."""


def summary(state: State) -> list[str]:
    """One line per area of the state, in the order an operator looks at them."""
    return [line for show in _LINES for line in show(state)]


def job_lines(job_id: str, job: Job) -> list[str]:
    """One job, one field per line; nested values as compact JSON."""
    lines = [f"job {job_id}"]
    for name, value in as_plain(job).items():
        if (name.endswith("_at") or name == "deadline") and isinstance(value, float):
            shown = utc(value)
        elif isinstance(value, str | int | float):
            shown = str(value)
        else:
            shown = _compact(value)
        lines.append(f"  {name}: {shown}")
    return lines


def _jobs(state: State) -> list[str]:
    live = [job for job in state.jobs.by_id.values() if not job.deleted]
    deleted = len(state.jobs.by_id) - len(live)
    statuses = (job.status for job in live)
    return [
        f"jobs: {len(live)} ({_counts(statuses, get_args(JobStatus))}); "
        f"{deleted} deleted, {len(state.jobs.purged)} purged"
    ]


def _queue(state: State) -> list[str]:
    entries = state.jobs.queue
    return [f"queue: {len(entries)} queued{_heads(entries)}"]


def _locks(state: State) -> list[str]:
    held, waits = state.locks.held, state.jobs.waits
    lines = [f"locks: {len(held)} held, {sum(map(len, waits.values()))} jobs waiting"]
    for repo in sorted(held.keys() | {repo for repo, queue in waits.items() if queue}):
        lock = held.get(repo)
        holder = (
            f"held by {lock.holder} ({lock.kind}, generation {lock.generation}, "
            f"since seq {lock.seq})"
            if lock
            else "free"
        )
        waiters = waits.get(repo, {})
        lines.append(f"  {repo}: {holder}; {len(waiters)} waiting{_heads(waiters)}")
    return lines


def _batches(state: State) -> list[str]:
    active = state.batches.active.values()
    phases = (batch.phase for batch in active)
    return [
        f"batches: {len(active)} active ({_counts(phases, get_args(BatchPhase))}), "
        f"{state.batches.formed} formed in all"
    ]


def _callbacks(state: State) -> list[str]:
    callbacks = state.callbacks.by_id.values()
    counts = Counter(callback.status for callback in callbacks)
    in_flight = sum(callback.in_flight for callback in callbacks)
    return [
        f"callbacks: {len(state.callbacks.pending)} pending ({in_flight} in flight), "
        f"{counts['delivered']} delivered, {counts['gave_up']} gave up"
    ]


def _cleanups(state: State) -> list[str]:
    pending = state.cleanup.pending.values()
    failing = sum(1 for cleanup in pending if cleanup.failures)
    return [
        f"cleanups: {len(pending)} pending ({failing} failed at least once), "
        f"{state.cleanup.completed} completed"
    ]


def _resources(state: State) -> list[str]:
    return [
        f"containers: {len(state.resources.containers)}, "
        f"networks: {len(state.resources.networks)}, "
        f"staging dirs: {len(state.staging.dirs)}"
    ]


def _repos(state: State) -> list[str]:
    repos = state.repos.by_name
    shown = ", ".join(
        f"{name} ({repo.clone}{', degraded' if repo.degraded else ''})"
        for name, repo in sorted(repos.items())
    )
    return [f"repos: {len(repos)}{': ' + shown if shown else ''}"]


def _users(state: State) -> list[str]:
    return [f"users: {len(state.users.by_id)}, tokens: {len(state.users.tokens)}"]


def _server(state: State) -> list[str]:
    server = state.server
    status = f"up since seq {server.boot_seq}" if server.up else "down"
    if server.recovering:
        status += ", recovering"
    crashes = f" (the last seen at seq {server.crash_seqs[-1]})" if server.crash_seqs else ""
    return [f"server: {status}; {server.boots} boots, {len(server.crash_seqs)} crashes{crashes}"]


_LINES: tuple[Callable[[State], list[str]], ...] = (
    _jobs,
    _queue,
    _locks,
    _batches,
    _callbacks,
    _cleanups,
    _resources,
    _repos,
    _users,
    _server,
)


def _counts(values: Iterable[str], order: tuple[str, ...]) -> str:
    """`3 queued, 45 running`: non-zero counts in the lifecycle's order, or `none`."""
    counts = Counter(values)
    return ", ".join(f"{counts[name]} {name}" for name in order if counts[name]) or "none"


def _heads(ids: Iterable[str]) -> str:
    """`: a, b, c (+7 more)` for the first HEAD ids in order, or nothing when there are none."""
    ordered = list(ids)
    if not ordered:
        return ""
    more = f" (+{len(ordered) - HEAD} more)" if len(ordered) > HEAD else ""
    return ": " + ", ".join(ordered[:HEAD]) + more


def _compact(value: Any) -> str:
    return msgspec.json.encode(value).decode()
