"""Run-time statistics per (repository, agent), derived from the log and so never lost.

Fed by ``jobs.move`` at the two transitions that matter, with the times ``decide`` wrote into
the events (never the envelope's display time): queue wait = process start - enqueue, run
time = end - process start. Each key keeps a bounded window of recent values, so the state
stays small and the percentiles follow the recent behaviour of an agent on a repository.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

import msgspec

from projections.lifecycle import JobStatus

if TYPE_CHECKING:
    from projections.jobs import Job
    from projections.state import State

WINDOW: Final = 500


class AgentStats(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    jobs: int = 0
    """Jobs of this key that ended."""
    completed: int = 0
    run_times: list[float] = msgspec.field(default_factory=list)
    """The last ``WINDOW`` run times (completed jobs) in seconds, oldest first."""
    queue_waits: list[float] = msgspec.field(default_factory=list)

    @property
    def success_rate(self) -> float | None:
        return self.completed / self.jobs if self.jobs else None

    def run_time(self, percentile: float) -> float | None:
        return nearest_rank(self.run_times, percentile)

    def queue_wait(self, percentile: float) -> float | None:
        return nearest_rank(self.queue_waits, percentile)


class Stats(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    by_key: dict[str, dict[str, AgentStats]] = msgspec.field(default_factory=dict)
    """repo -> agent -> statistics."""
    outcomes: dict[str, int] = msgspec.field(default_factory=dict)
    """Count of ended jobs per terminal status."""

    def of(self, repo: str, agent: str) -> AgentStats | None:
        return self.by_key.get(repo, {}).get(agent)

    def _key(self, job: Job) -> AgentStats:
        agents = self.by_key.get(job.spec.repo)
        if agents is None:
            agents = self.by_key[job.spec.repo] = {}
        found = agents.get(job.spec.agent)
        if found is None:
            found = agents[job.spec.agent] = AgentStats()
        return found


def nearest_rank(values: list[float], percentile: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percentile / 100 * len(ordered)) - 1)]


def _push(window: list[float], value: float) -> None:
    window.append(value)
    if len(window) > WINDOW:
        del window[0]


def job_started(state: State, job: Job, at: float) -> None:
    if job.enqueued_at is not None:
        _push(state.stats._key(job).queue_waits, max(0.0, at - job.enqueued_at))


def job_ended(state: State, job: Job, status: JobStatus) -> None:
    stats = state.stats
    stats.outcomes[status] = stats.outcomes.get(status, 0) + 1
    key = stats._key(job)
    key.jobs += 1
    if status == "completed":
        key.completed += 1
        if job.started_at is not None and job.ended_at is not None:
            _push(key.run_times, max(0.0, job.ended_at - job.started_at))
