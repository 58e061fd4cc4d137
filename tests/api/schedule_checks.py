"""The scheduling rules of issue 9, judged from a server's event log.

Every state change is in the log with its seq, so checking the whole history after a run
cannot miss a violation the way sampling the API can. The model here is rebuilt from the raw
events, independently of `projections` (whose folds could share a bug with `decide`):

- slots: at most `max_concurrent` jobs hold a slot (waiting for a lock, preparing or running)
  after any event, so at most that many prepare or run;
- locks: a repository is never prepared (or cloned) twice at once;
- FIFO: jobs leave the run queue (wait or join a batch) in the order they were enqueued, both
  over the whole server and within each repository, and each repository's batches take its
  jobs in that order too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from projections import Envelope
from projections.plain import as_plain

Row = tuple[int, dict[str, Any]]
"""(seq, event as plain data with its `type`)."""

SLOT_HOLDERS = frozenset({"waiting", "preparing", "running", "stopping"})
ENDINGS = frozenset({"job.completed", "job.failed", "job.timed-out", "job.cancelled", "job.lost"})


def rows(events: Iterable[tuple[int, Envelope]]) -> list[Row]:
    return [(seq, as_plain(envelope.event)) for seq, envelope in events]


@dataclass
class Schedule:
    """What a history did, as the checks need it."""

    status: dict[str, str] = field(default_factory=dict)
    repo_of: dict[str, str] = field(default_factory=dict)
    enqueued: list[str] = field(default_factory=list)
    dispatched: list[str] = field(default_factory=list)
    """Jobs in the order they left the run queue (a wait or a batch)."""
    prepared: list[str] = field(default_factory=list)
    """Jobs in the order they started preparing (batch members in batch order)."""
    peak_slots: int = 0
    peak_preparing_running: int = 0
    violations: list[str] = field(default_factory=list)


def follow(history: list[Row], max_concurrent: int) -> Schedule:
    """Replay `history` into a Schedule, noting every rule broken and where."""
    s = Schedule()
    busy: dict[str, str] = {}
    """repo -> what prepares or clones it now (a batch id or 'clone')."""
    batches: dict[str, tuple[str, list[str]]] = {}
    for seq, event in history:
        kind = event["type"]
        if kind == "job.created":
            s.status[event["job_id"]] = "created"
            s.repo_of[event["job_id"]] = event["repo"]
        elif kind == "job.enqueued":
            s.status[event["job_id"]] = "queued"
            s.enqueued.append(event["job_id"])
        elif kind == "job.waiting":
            _leave_queue(s, event["job_id"], seq)
            s.status[event["job_id"]] = "waiting"
        elif kind == "repo.clone-started":
            _occupy(s, busy, event["repo"], "clone", seq)
        elif kind in ("repo.clone-completed", "repo.clone-failed"):
            busy.pop(event["repo"], None)
        elif kind == "batch.formed":
            _occupy(s, busy, event["repo"], event["batch_id"], seq)
            batches[event["batch_id"]] = (event["repo"], list(event["job_ids"]))
            for job in event["job_ids"]:
                if s.status.get(job) != "waiting":
                    _leave_queue(s, job, seq)
                s.status[job] = "preparing"
                s.prepared.append(job)
        elif kind in ("batch.prepared", "batch.failed"):
            repo, members = batches[event["batch_id"]]
            if busy.get(repo) == event["batch_id"]:
                del busy[repo]
            if kind == "batch.failed":
                for job in members:
                    if s.status.get(job) == "preparing":
                        s.status[job] = "failed"
        elif kind == "job.process-started":
            s.status[event["job_id"]] = "running"
        elif kind in ("job.cancel-requested", "job.delete-requested"):
            s.status[event["job_id"]] = "stopping"
        elif kind in ENDINGS:
            s.status[event["job_id"]] = kind.removeprefix("job.")
        _count(s, seq, max_concurrent)
    _fifo(s)
    return s


def _leave_queue(s: Schedule, job: str, seq: int) -> None:
    if s.status.get(job) != "queued":
        s.violations.append(f"seq {seq}: {job} left the run queue without being queued")
    s.dispatched.append(job)


def _occupy(s: Schedule, busy: dict[str, str], repo: str, holder: str, seq: int) -> None:
    if repo in busy:
        s.violations.append(f"seq {seq}: {holder} prepares {repo!r} while {busy[repo]} still does")
    busy[repo] = holder


def _count(s: Schedule, seq: int, max_concurrent: int) -> None:
    holding = sum(1 for status in s.status.values() if status in SLOT_HOLDERS)
    working = sum(1 for status in s.status.values() if status in ("preparing", "running"))
    s.peak_slots = max(s.peak_slots, holding)
    s.peak_preparing_running = max(s.peak_preparing_running, working)
    if holding > max_concurrent:
        s.violations.append(f"seq {seq}: {holding} jobs hold a slot (max {max_concurrent})")


def _fifo(s: Schedule) -> None:
    position = {job: n for n, job in enumerate(s.enqueued)}
    never = len(position)  # a job dispatched unqueued sorts last (and is a violation already)

    def in_fifo(jobs: list[str]) -> list[str]:
        return sorted(jobs, key=lambda job: position.get(job, never))

    if s.dispatched != in_fifo(s.dispatched):
        s.violations.append(f"jobs left the run queue out of order: {s.dispatched}")
    for repo in sorted(set(s.repo_of.values())):
        for what, order in (("left the queue", s.dispatched), ("prepared", s.prepared)):
            mine = [job for job in order if s.repo_of[job] == repo]
            if mine != in_fifo(mine):
                s.violations.append(f"jobs of {repo!r} {what} out of order: {mine}")
