"""When a running agent must be stopped or given up: its deadline and its heartbeat.

One rule for the shell, which watches agents and acts on it (kills at the deadline, kills a
silent agent), and for ``decide``, which judges the shell's report of what it saw by the same
rule (``decide.endings``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from projections.events import ServerSettings
    from projections.jobs import Job


def past_deadline(job: Job, now: float) -> bool:
    """The job has run out of time: its deadline (fixed when its process started, from its
    timeout) has come."""
    return job.deadline is not None and now >= job.deadline


def heartbeat_stale(settings: ServerSettings, age: float | None) -> bool:
    """An agent whose heartbeat is this old (None: it has no heartbeat file) is given up:
    older than ``heartbeat_stale_seconds``, or missing."""
    return age is None or age > settings.heartbeat_stale_seconds
