"""The composite state and the one ``evolve`` that folds an event into it.

Dispatch is a dict from event class to the handlers interested in it, built once at import:
one lookup per event, then a direct call per interested projection. State is mutated in place
(copying collections per event would cost more than all the folds together); ``evolve`` is
still deterministic: no I/O, clock or randomness, and no sets, whose iteration order would vary
between processes and make snapshots differ.
"""

from __future__ import annotations

from typing import Final

import msgspec

from projections import (
    batches,
    callbacks,
    cleanup,
    jobs,
    lifecycle,
    locks,
    queue,
    repos,
    resources,
    staging,
    stats,
    users,
    waits,
)
from projections.envelope import Envelope
from projections.events import EVENT_TYPES, Event
from projections.handlers import Handler


class State(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    last_seq: int = 0
    """Seq of the last event folded in; a snapshot of this state covers the log up to here."""
    users: users.Users = msgspec.field(default_factory=users.Users)
    repos: repos.Repos = msgspec.field(default_factory=repos.Repos)
    jobs: jobs.Jobs = msgspec.field(default_factory=jobs.Jobs)
    queue: queue.Queue = msgspec.field(default_factory=queue.Queue)
    waits: waits.Waits = msgspec.field(default_factory=waits.Waits)
    locks: locks.Locks = msgspec.field(default_factory=locks.Locks)
    batches: batches.Batches = msgspec.field(default_factory=batches.Batches)
    callbacks: callbacks.Callbacks = msgspec.field(default_factory=callbacks.Callbacks)
    cleanup: cleanup.Cleanups = msgspec.field(default_factory=cleanup.Cleanups)
    resources: resources.Resources = msgspec.field(default_factory=resources.Resources)
    staging: staging.Staging = msgspec.field(default_factory=staging.Staging)
    stats: stats.Stats = msgspec.field(default_factory=stats.Stats)
    lifecycle: lifecycle.Lifecycle = msgspec.field(default_factory=lifecycle.Lifecycle)


_PROJECTIONS: Final[tuple[tuple[str, dict[type[Event], Handler]], ...]] = (
    ("users", users.HANDLERS),
    ("repos", repos.HANDLERS),
    ("jobs", jobs.HANDLERS),
    ("queue", queue.HANDLERS),
    ("waits", waits.HANDLERS),
    ("locks", locks.HANDLERS),
    ("batches", batches.HANDLERS),
    ("callbacks", callbacks.HANDLERS),
    ("cleanup", cleanup.HANDLERS),
    ("resources", resources.HANDLERS),
    ("staging", staging.HANDLERS),
    ("stats", stats.HANDLERS),
    ("lifecycle", lifecycle.HANDLERS),
)


def _build_dispatch() -> dict[type[Event], tuple[tuple[str, Handler], ...]]:
    return {
        cls: tuple((name, handlers[cls]) for name, handlers in _PROJECTIONS if cls in handlers)
        for cls in EVENT_TYPES
    }


_DISPATCH: Final = _build_dispatch()


def evolve(state: State, seq: int, env: Envelope) -> State:
    """Fold the event at ``seq`` into ``state`` (in place) and return it."""
    event = env.event
    for name, handler in _DISPATCH[type(event)]:
        handler(getattr(state, name), seq, env, event)
    state.last_seq = seq
    return state
