"""Deciding webhook attempts: when one may start, what its outcome means for the next, and
the operator's manual retry. The schedule is the one recorded with the callback."""

from __future__ import annotations

from typing import Final

from projections.callbacks import Delivery
from projections.commands import RecordAttempt, RetryCallback, StartAttempt
from projections.decide import common
from projections.errors import conflict, not_found
from projections.events import (
    CallbackAttemptFailed,
    CallbackAttemptStarted,
    CallbackAttemptSucceeded,
    CallbackGaveUp,
    CallbackRetryRequested,
    Event,
)
from projections.state import State

MAX_RETRY_AFTER: Final = 3600.0
"""A receiver's Retry-After is honoured up to this many seconds."""


def _delivery(state: State, callback_id: str) -> Delivery:
    found = state.callbacks.by_id.get(callback_id)
    if found is None:
        raise not_found("callback_not_found", f"no callback {callback_id!r}")
    return found


def start_attempt(state: State, command: StartAttempt, now: float) -> list[Event]:
    """Due, or in flight when a crash cut the previous attempt short (it is sent again)."""
    delivery = _delivery(state, command.callback_id)
    if delivery.status != "pending":
        raise conflict(
            "callback_not_pending", f"callback {command.callback_id!r} is {delivery.status}"
        )
    if not delivery.in_flight and (delivery.due_at is None or delivery.due_at > now):
        raise conflict("callback_not_due", f"callback {command.callback_id!r} is not due yet")
    return [
        CallbackAttemptStarted(
            callback_id=command.callback_id, attempt=len(delivery.attempts) + 1, at=now
        )
    ]


def record_attempt(state: State, command: RecordAttempt, now: float) -> list[Event]:
    delivery = _delivery(state, command.callback_id)
    if not delivery.in_flight or delivery.attempts[-1].number != command.attempt:
        raise conflict(
            "attempt_not_in_flight",
            f"attempt {command.attempt} of {command.callback_id!r} is not in flight",
        )
    cid, attempt = command.callback_id, command.attempt
    if command.outcome == "delivered":
        status = command.status if command.status is not None else 200
        return [CallbackAttemptSucceeded(callback_id=cid, attempt=attempt, status=status, at=now)]
    schedule = delivery.spec.schedule
    made = delivery.round_attempts
    if command.outcome == "retry" and made <= len(schedule):
        delay = max(schedule[made - 1], min(command.retry_after or 0.0, MAX_RETRY_AFTER))
        return [
            CallbackAttemptFailed(
                callback_id=cid,
                attempt=attempt,
                status=command.status,
                error=command.error,
                next_retry_at=now + delay,
            )
        ]
    reason = (
        f"no retry after a {command.status} answer"
        if command.outcome == "give_up"
        else f"gave up after {made} attempts"
    )
    return [
        CallbackAttemptFailed(
            callback_id=cid,
            attempt=attempt,
            status=command.status,
            error=command.error,
            next_retry_at=None,
        ),
        CallbackGaveUp(callback_id=cid, reason=reason),
    ]


def retry(state: State, command: RetryCallback, now: float) -> list[Event]:
    found = common.job(state, command.job_id)
    deliveries = state.callbacks.of_job(found.job_id)
    if not 0 <= command.index < len(deliveries):
        raise not_found(
            "callback_not_found", f"job {command.job_id!r} has no callback {command.index}"
        )
    delivery = deliveries[command.index]
    if delivery.status != "gave_up":
        raise conflict(
            "callback_not_failed",
            f"callback {command.index} of job {command.job_id!r} is {delivery.status}",
        )
    return [CallbackRetryRequested(callback_id=delivery.callback_id, at=now)]
