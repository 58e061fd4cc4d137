"""Small builders shared by the projection tests: wrap events, fold lists of them."""

from __future__ import annotations

from collections.abc import Iterable

from projections import Envelope, Event, State, evolve
from projections.envelope import make
from projections.events import JobCreated, JobOptions


def env(event: Event, ts: float = 1000.0, actor: str = "system") -> Envelope:
    return make(event, ts=ts, actor=actor)


def fold(events: Iterable[Event | Envelope], state: State | None = None) -> State:
    """Fold events in order, numbering them after ``state.last_seq``."""
    state = State() if state is None else state
    for item in events:
        envelope = item if isinstance(item, Envelope) else env(item)
        evolve(state, state.last_seq + 1, envelope)
    return state


def created(
    job_id: str, repo: str = "api", agent: str = "claude-code", at: float = 1.0
) -> JobCreated:
    """A job as the v1 -> v2 upcaster lifts a v1 job without options: timeout 3600 s."""
    return JobCreated(
        job_id=job_id,
        owner="alice",
        prompt="fix the tests",
        repo=repo,
        agent=agent,
        options=JobOptions(timeout_seconds=3600.0),
        callbacks=[],
        idempotency=None,
        at=at,
    )
