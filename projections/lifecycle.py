"""A job's lifecycle, defined once: its statuses and the one transition table.

``decide`` asks the table whether a command may move a job; ``evolve`` asks it where an event
moves a job (and records an anomaly when the event could not have been decided); the
invariants read the same sets. Nothing else anywhere says what "terminal" or "active" means.

    created -> queued -> [waiting ->] preparing -> running -> completed | failed | timed_out
                                          \\-> cancelling / deleting -> cancelled | lost

Every event is a whole fact, so the state after any prefix of a group of events is
consistent: ``batch.formed`` takes the repository lock and moves its members to preparing in
one step; ``batch.failed`` fails them in one step.
"""

from __future__ import annotations

from typing import Final, Literal

from projections.events import (
    BatchFailed,
    BatchFormed,
    Event,
    JobCancelled,
    JobCancelRequested,
    JobCompleted,
    JobDeleted,
    JobDeleteRequested,
    JobEnqueued,
    JobFailed,
    JobFileStaged,
    JobLaunching,
    JobLost,
    JobProcessStarted,
    JobPurged,
    JobReattached,
    JobTimedOut,
    JobWaiting,
    JobWorkspaceCreated,
    StagingCreated,
)

JobStatus = Literal[
    "created",
    "queued",
    "waiting",
    "preparing",
    "running",
    "cancelling",
    "deleting",
    "completed",
    "failed",
    "timed_out",
    "cancelled",
    "lost",
]

TERMINAL: Final[frozenset[JobStatus]] = frozenset(
    {"completed", "failed", "timed_out", "cancelled", "lost"}
)
ACTIVE: Final[frozenset[JobStatus]] = frozenset(
    {"waiting", "preparing", "running", "cancelling", "deleting"}
)
"""Dispatched and not finished: each holds one of the ``max_concurrent`` slots."""
STOPPING: Final[frozenset[JobStatus]] = frozenset({"cancelling", "deleting"})

_TERMINAL_STAY: Final[dict[JobStatus, JobStatus]] = {s: s for s in TERMINAL}

TRANSITIONS: Final[dict[type[Event], dict[JobStatus, JobStatus]]] = {
    JobFileStaged: {"created": "created"},
    StagingCreated: {"created": "created"},
    JobEnqueued: {"created": "queued"},
    JobWaiting: {"queued": "waiting"},
    BatchFormed: {"queued": "preparing", "waiting": "preparing"},
    JobWorkspaceCreated: {"preparing": "preparing"},
    JobLaunching: {"preparing": "preparing", "cancelling": "cancelling", "deleting": "deleting"},
    JobProcessStarted: {"preparing": "running", "cancelling": "cancelling", "deleting": "deleting"},
    JobReattached: {"running": "running", "cancelling": "cancelling", "deleting": "deleting"},
    JobCompleted: {"running": "completed"},
    JobFailed: {
        "queued": "failed",
        "waiting": "failed",
        "preparing": "failed",
        "running": "failed",
    },
    BatchFailed: {"preparing": "failed"},
    JobTimedOut: {"running": "timed_out"},
    JobCancelRequested: {"preparing": "cancelling", "running": "cancelling"},
    JobDeleteRequested: {"preparing": "deleting", "running": "deleting", "cancelling": "deleting"},
    JobCancelled: {
        "created": "cancelled",
        "queued": "cancelled",
        "waiting": "cancelled",
        "preparing": "cancelled",
        "cancelling": "cancelled",
        "deleting": "cancelled",
    },
    JobLost: {"preparing": "lost", "running": "lost", "cancelling": "lost", "deleting": "lost"},
    JobDeleted: _TERMINAL_STAY,
    JobPurged: _TERMINAL_STAY,
}
"""event type -> {status before: status after}. A status missing from an event's row means
the event cannot happen to a job in that status."""


def next_status(status: JobStatus, event: type[Event]) -> JobStatus | None:
    """Where ``event`` moves a job in ``status``; None when the move is illegal."""
    return TRANSITIONS[event].get(status)


def allowed_from(event: type[Event]) -> frozenset[JobStatus]:
    return frozenset(TRANSITIONS[event])
