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
    locks,
    repos,
    resources,
    server,
    staging,
    stats,
    users,
)
from projections.envelope import Envelope
from projections.events import EVENT_TYPES, Event
from projections.handlers import Handler, Handlers

MAX_ANOMALIES: Final = 100
"""Only the first anomalies are kept: one is enough to fail a check, all would grow forever."""


class State(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    last_seq: int = 0
    """Seq of the last event folded in; a snapshot of this state covers the log up to here."""
    server: server.Server = msgspec.field(default_factory=server.Server)
    users: users.Users = msgspec.field(default_factory=users.Users)
    repos: repos.Repos = msgspec.field(default_factory=repos.Repos)
    jobs: jobs.Jobs = msgspec.field(default_factory=jobs.Jobs)
    locks: locks.Locks = msgspec.field(default_factory=locks.Locks)
    batches: batches.Batches = msgspec.field(default_factory=batches.Batches)
    callbacks: callbacks.Callbacks = msgspec.field(default_factory=callbacks.Callbacks)
    cleanup: cleanup.Cleanups = msgspec.field(default_factory=cleanup.Cleanups)
    resources: resources.Resources = msgspec.field(default_factory=resources.Resources)
    staging: staging.Staging = msgspec.field(default_factory=staging.Staging)
    stats: stats.Stats = msgspec.field(default_factory=stats.Stats)
    anomalies: list[str] = msgspec.field(default_factory=list)
    """Events the folds applied although ``decide`` could never have produced them."""
    anomaly_count: int = 0

    def note(self, anomaly: str) -> None:
        """Record an event that breaks the domain's rules; the fold goes on regardless."""
        self.anomaly_count += 1
        if len(self.anomalies) < MAX_ANOMALIES:
            self.anomalies.append(anomaly)


_PROJECTIONS: Final[tuple[Handlers, ...]] = (
    server.HANDLERS,
    users.HANDLERS,
    repos.HANDLERS,
    jobs.HANDLERS,
    locks.HANDLERS,
    batches.HANDLERS,
    callbacks.HANDLERS,
    cleanup.HANDLERS,
    resources.HANDLERS,
    staging.HANDLERS,
)


def _chain(handlers: tuple[Handler, ...]) -> Handler:
    """One callable per event type: most types have a single handler, called directly."""
    if len(handlers) == 1:
        return handlers[0]
    if len(handlers) == 2:
        first, second = handlers

        def both(state: State, seq: int, env: Envelope, event: Event) -> None:
            first(state, seq, env, event)
            second(state, seq, env, event)

        return both

    def chained(state: State, seq: int, env: Envelope, event: Event) -> None:
        for handler in handlers:
            handler(state, seq, env, event)

    return chained


def _build_dispatch() -> dict[type[Event], Handler]:
    return {
        cls: _chain(tuple(handlers[cls] for handlers in _PROJECTIONS if cls in handlers))
        for cls in EVENT_TYPES
    }


_DISPATCH: Final = _build_dispatch()


def evolve(state: State, seq: int, env: Envelope) -> State:
    """Fold the event at ``seq`` into ``state`` (in place) and return it."""
    event = env.event
    _DISPATCH[type(event)](state, seq, env, event)
    state.last_seq = seq
    return state
