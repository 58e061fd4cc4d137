"""Run-time statistics per (repository, agent), derived from the log and so never lost.

Durations run from the envelope time of ``job.process-started`` to that of ``job.completed``.
Each key keeps a bounded window of the most recent durations, so the state stays small and the
P90 follows the recent behaviour of an agent on a repository.
"""

from __future__ import annotations

import math
from typing import Final

import msgspec

from projections.envelope import Envelope
from projections.events import (
    JobCancelled,
    JobCompleted,
    JobCreated,
    JobDeleted,
    JobFailed,
    JobLost,
    JobProcessStarted,
    JobTimedOut,
)
from projections.handlers import Handlers, HasJobId

WINDOW: Final = 1000


class Stats(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    durations: dict[str, dict[str, list[float]]] = msgspec.field(default_factory=dict)
    """repo -> agent -> the last ``WINDOW`` durations in seconds, oldest first."""
    outcomes: dict[str, int] = msgspec.field(default_factory=dict)
    """Count of ended jobs per terminal status."""
    keys: dict[str, tuple[str, str]] = msgspec.field(default_factory=dict)
    """Unfinished job -> (repo, agent), so a completion knows where its duration belongs."""
    started: dict[str, float] = msgspec.field(default_factory=dict)
    """Running job -> envelope time its process started."""

    def p90(self, repo: str, agent: str) -> float | None:
        """Nearest-rank 90th percentile duration in seconds, None without data."""
        window = self.durations.get(repo, {}).get(agent)
        if not window:
            return None
        ordered = sorted(window)
        return ordered[math.ceil(0.9 * len(ordered)) - 1]

    def _created(self, seq: int, env: Envelope, ev: JobCreated) -> None:
        self.keys[ev.job_id] = (ev.repo, ev.agent)

    def _process_started(self, seq: int, env: Envelope, ev: JobProcessStarted) -> None:
        self.started[ev.job_id] = env.ts

    def _completed(self, seq: int, env: Envelope, ev: JobCompleted) -> None:
        self._count("completed")
        key = self.keys.pop(ev.job_id, None)
        start = self.started.pop(ev.job_id, None)
        if key is None or start is None:
            return
        repo, agent = key
        agents = self.durations.get(repo)
        if agents is None:
            agents = self.durations[repo] = {}
        window = agents.get(agent)
        if window is None:
            window = agents[agent] = []
        window.append(env.ts - start)
        if len(window) > WINDOW:
            del window[0]

    def _ended(self, seq: int, env: Envelope, ev: HasJobId) -> None:
        self._count(_OUTCOMES[type(ev)])
        self._forget(seq, env, ev)

    def _forget(self, seq: int, env: Envelope, ev: HasJobId) -> None:
        self.keys.pop(ev.job_id, None)
        self.started.pop(ev.job_id, None)

    def _count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


_OUTCOMES: Final[dict[type, str]] = {
    JobFailed: "failed",
    JobTimedOut: "timed_out",
    JobCancelled: "cancelled",
    JobLost: "lost",
}

HANDLERS: Handlers = {
    JobCreated: Stats._created,
    JobProcessStarted: Stats._process_started,
    JobCompleted: Stats._completed,
    JobDeleted: Stats._forget,
    **dict.fromkeys(_OUTCOMES, Stats._ended),
}
