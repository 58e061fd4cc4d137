"""Webhook deliveries: one per callback a job declared, with every attempt and its outcome.

A delivery is ``scheduled`` from the job's creation, becomes ``pending`` (due) only with the
job's terminal event, so no receiver ever hears of an unfinished job. An attempt is written
before the request is sent and its outcome after, so an attempt without outcome was in flight
at a crash; recovery sends it again under the same webhook-id (receivers dedupe by it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import msgspec

from projections.envelope import Envelope
from projections.events import (
    CallbackAttemptFailed,
    CallbackAttemptStarted,
    CallbackAttemptSucceeded,
    CallbackDue,
    CallbackGaveUp,
    CallbackRetryRequested,
    CallbackSpec,
    JobCreated,
    JobPurged,
)
from projections.handlers import Handlers
from projections.lifecycle import TERMINAL

if TYPE_CHECKING:
    from projections.state import State

DeliveryStatus = Literal["scheduled", "pending", "delivered", "gave_up"]


class Attempt(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    number: int
    started_at: float
    status: int | None = None
    error: str | None = None
    succeeded: bool = False
    next_retry_at: float | None = None
    finished: bool = False


class Delivery(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    spec: CallbackSpec
    job_id: str
    index: int
    """Place among the job's callbacks, as the API numbers them."""
    status: DeliveryStatus = "scheduled"
    webhook_id: str | None = None
    due_at: float | None = None
    attempts: list[Attempt] = msgspec.field(default_factory=list)
    round_start: int = 0
    """Index in ``attempts`` where the current round began (a manual retry starts a round)."""

    @property
    def callback_id(self) -> str:
        return self.spec.callback_id

    @property
    def in_flight(self) -> bool:
        return bool(self.attempts) and not self.attempts[-1].finished

    @property
    def round_attempts(self) -> int:
        return len(self.attempts) - self.round_start


class Callbacks(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    by_id: dict[str, Delivery] = msgspec.field(default_factory=dict)
    pending: dict[str, None] = msgspec.field(default_factory=dict)
    """Deliveries due or in flight, in the order they became due: the sender scans only these."""
    by_job: dict[str, list[str]] = msgspec.field(default_factory=dict)

    def of_job(self, job_id: str) -> list[Delivery]:
        return [self.by_id[cid] for cid in self.by_job.get(job_id, ())]

    def due(self, now: float) -> list[Delivery]:
        """Deliveries to attempt at ``now`` (in-flight ones excluded), earliest first."""
        by_id = self.by_id
        found = [
            d
            for d in (by_id[cid] for cid in self.pending)
            if not d.in_flight and d.due_at is not None and d.due_at <= now
        ]
        found.sort(key=lambda d: d.due_at or 0.0)
        return found

    def in_flight(self) -> list[Delivery]:
        by_id = self.by_id
        return [by_id[cid] for cid in self.pending if by_id[cid].in_flight]


def _delivery(state: State, callback_id: str, seq: int) -> Delivery | None:
    delivery = state.callbacks.by_id.get(callback_id)
    if delivery is None:
        state.note(f"seq {seq}: event about unknown callback {callback_id!r}")
        return None
    job = state.jobs.by_id.get(delivery.job_id)
    if job is not None:
        job.seqs.append(seq)
    return delivery


def _attempt(state: State, delivery: Delivery, number: int, seq: int) -> Attempt | None:
    attempts = delivery.attempts
    if not attempts or attempts[-1].finished or attempts[-1].number != number:
        state.note(f"seq {seq}: outcome of attempt {number} of {delivery.callback_id!r} not sent")
        return None
    attempt = attempts[-1]
    attempt.finished = True
    return attempt


def _job_created(state: State, seq: int, env: Envelope, ev: JobCreated) -> None:
    if not ev.callbacks or ev.job_id in state.callbacks.by_job:
        return
    callbacks = state.callbacks
    ids = []
    for index, spec in enumerate(ev.callbacks):
        if spec.callback_id in callbacks.by_id:
            state.note(f"seq {seq}: callback {spec.callback_id!r} declared twice")
            continue
        callbacks.by_id[spec.callback_id] = Delivery(spec=spec, job_id=ev.job_id, index=index)
        ids.append(spec.callback_id)
    callbacks.by_job[ev.job_id] = ids


def _due(state: State, seq: int, env: Envelope, ev: CallbackDue) -> None:
    delivery = _delivery(state, ev.callback_id, seq)
    if delivery is None:
        return
    job = state.jobs.by_id.get(delivery.job_id)
    if job is None or job.status not in TERMINAL:
        state.note(f"seq {seq}: callback {ev.callback_id!r} due for an unfinished job")
    if delivery.status != "scheduled":
        state.note(f"seq {seq}: callback {ev.callback_id!r} due twice")
        return
    delivery.status = "pending"
    delivery.webhook_id = ev.webhook_id
    delivery.due_at = ev.due_at
    state.callbacks.pending[ev.callback_id] = None


def _attempt_started(state: State, seq: int, env: Envelope, ev: CallbackAttemptStarted) -> None:
    delivery = _delivery(state, ev.callback_id, seq)
    if delivery is None:
        return
    if delivery.status != "pending" or ev.attempt != len(delivery.attempts) + 1:
        state.note(
            f"seq {seq}: attempt {ev.attempt} of {ev.callback_id!r} started while "
            f"{delivery.status} after {len(delivery.attempts)} attempts"
        )
        return
    attempts = delivery.attempts
    if attempts and not attempts[-1].finished:
        attempts[-1].finished = True
        attempts[-1].error = "interrupted (no outcome recorded)"
    delivery.attempts.append(Attempt(number=ev.attempt, started_at=ev.at))


def _succeeded(state: State, seq: int, env: Envelope, ev: CallbackAttemptSucceeded) -> None:
    delivery = _delivery(state, ev.callback_id, seq)
    attempt = _attempt(state, delivery, ev.attempt, seq) if delivery else None
    if delivery is None or attempt is None:
        return
    attempt.status = ev.status
    attempt.succeeded = True
    delivery.status = "delivered"
    delivery.due_at = None
    state.callbacks.pending.pop(ev.callback_id, None)


def _failed(state: State, seq: int, env: Envelope, ev: CallbackAttemptFailed) -> None:
    delivery = _delivery(state, ev.callback_id, seq)
    attempt = _attempt(state, delivery, ev.attempt, seq) if delivery else None
    if delivery is None or attempt is None:
        return
    attempt.status = ev.status
    attempt.error = ev.error
    attempt.next_retry_at = ev.next_retry_at
    delivery.due_at = ev.next_retry_at


def _gave_up(state: State, seq: int, env: Envelope, ev: CallbackGaveUp) -> None:
    delivery = _delivery(state, ev.callback_id, seq)
    if delivery is None:
        return
    if delivery.status != "pending" or delivery.in_flight:
        state.note(f"seq {seq}: callback {ev.callback_id!r} gave up while {delivery.status}")
        return
    delivery.status = "gave_up"
    delivery.due_at = None
    state.callbacks.pending.pop(ev.callback_id, None)


def _retry_requested(state: State, seq: int, env: Envelope, ev: CallbackRetryRequested) -> None:
    delivery = _delivery(state, ev.callback_id, seq)
    if delivery is None:
        return
    if delivery.status != "gave_up":
        state.note(f"seq {seq}: retry of callback {ev.callback_id!r} while {delivery.status}")
        return
    delivery.status = "pending"
    delivery.due_at = ev.at
    delivery.round_start = len(delivery.attempts)
    state.callbacks.pending[ev.callback_id] = None


def _job_purged(state: State, seq: int, env: Envelope, ev: JobPurged) -> None:
    callbacks = state.callbacks
    for cid in callbacks.by_job.pop(ev.job_id, ()):
        if cid in callbacks.pending:
            state.note(f"seq {seq}: job {ev.job_id!r} purged with callback {cid!r} pending")
            callbacks.pending.pop(cid)
        callbacks.by_id.pop(cid, None)


HANDLERS: Handlers = {
    JobCreated: _job_created,
    CallbackDue: _due,
    CallbackAttemptStarted: _attempt_started,
    CallbackAttemptSucceeded: _succeeded,
    CallbackAttemptFailed: _failed,
    CallbackGaveUp: _gave_up,
    CallbackRetryRequested: _retry_requested,
    JobPurged: _job_purged,
}
