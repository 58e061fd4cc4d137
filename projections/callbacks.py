"""Webhook deliveries: every scheduled callback, its attempts and its outcome.

An attempt is written before the request is sent and its outcome after, so an attempt without
outcome is one that was in flight at a crash; recovery sends it again (receivers dedupe by
webhook-id). Finished deliveries are kept for the job's history until the job is deleted.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

from projections.envelope import Envelope
from projections.events import (
    CallbackAttemptFailed,
    CallbackAttemptStarted,
    CallbackAttemptSucceeded,
    CallbackGaveUp,
    CallbackScheduled,
    JobDeleted,
)
from projections.handlers import Handlers

MAX_CALLBACK_ATTEMPTS: Final = 6
"""Delivery policy: the service gives up after this many attempts; the checker enforces it."""

CallbackStatus = Literal["pending", "delivered", "gave_up"]


class Callback(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    spec: CallbackScheduled
    due_at: float | None
    """None while a failed attempt awaits the decision to give up (no retry was scheduled)."""
    status: CallbackStatus = "pending"
    attempts: int = 0
    in_flight: bool = False
    http_status: int | None = None
    last_error: str | None = None


class Callbacks(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    by_id: dict[str, Callback] = msgspec.field(default_factory=dict)
    pending: dict[str, None] = msgspec.field(default_factory=dict)
    """Index of undelivered callbacks in scheduling order; the dispatcher scans only these."""
    by_job: dict[str, list[str]] = msgspec.field(default_factory=dict)

    def due(self, now: float, *, include_in_flight: bool = False) -> list[Callback]:
        """Callbacks to send at ``now``, earliest due first (ties in scheduling order).

        In-flight attempts are excluded in normal running, and included by recovery, for which
        an attempt without outcome was interrupted.
        """
        by_id = self.by_id
        found = [
            cb
            for cb in (by_id[cid] for cid in self.pending)
            if cb.due_at is not None
            and cb.due_at <= now
            and (include_in_flight or not cb.in_flight)
        ]
        found.sort(key=_due_at)
        return found

    def in_flight(self) -> list[Callback]:
        by_id = self.by_id
        return [by_id[cid] for cid in self.pending if by_id[cid].in_flight]

    def _scheduled(self, seq: int, env: Envelope, ev: CallbackScheduled) -> None:
        self.by_id[ev.callback_id] = Callback(spec=ev, due_at=ev.due_at)
        self.pending[ev.callback_id] = None
        ids = self.by_job.get(ev.job_id)
        if ids is None:
            self.by_job[ev.job_id] = [ev.callback_id]
        else:
            ids.append(ev.callback_id)

    def _attempt_started(self, seq: int, env: Envelope, ev: CallbackAttemptStarted) -> None:
        cb = self.by_id.get(ev.callback_id)
        if cb is not None:
            cb.attempts = ev.attempt
            cb.in_flight = True

    def _succeeded(self, seq: int, env: Envelope, ev: CallbackAttemptSucceeded) -> None:
        cb = self.by_id.get(ev.callback_id)
        if cb is not None:
            cb.in_flight = False
            cb.status = "delivered"
            cb.http_status = ev.status
            cb.due_at = None
            self.pending.pop(ev.callback_id, None)

    def _failed(self, seq: int, env: Envelope, ev: CallbackAttemptFailed) -> None:
        cb = self.by_id.get(ev.callback_id)
        if cb is not None:
            cb.in_flight = False
            cb.http_status = ev.status
            cb.last_error = ev.error
            cb.due_at = ev.next_retry_at

    def _gave_up(self, seq: int, env: Envelope, ev: CallbackGaveUp) -> None:
        cb = self.by_id.get(ev.callback_id)
        if cb is not None:
            cb.in_flight = False
            cb.status = "gave_up"
            cb.last_error = ev.reason
            cb.due_at = None
            self.pending.pop(ev.callback_id, None)

    def _job_deleted(self, seq: int, env: Envelope, ev: JobDeleted) -> None:
        for cid in self.by_job.pop(ev.job_id, ()):
            self.by_id.pop(cid, None)
            self.pending.pop(cid, None)


def _due_at(cb: Callback) -> float:
    return cb.due_at if cb.due_at is not None else float("inf")


HANDLERS: Handlers = {
    CallbackScheduled: Callbacks._scheduled,
    CallbackAttemptStarted: Callbacks._attempt_started,
    CallbackAttemptSucceeded: Callbacks._succeeded,
    CallbackAttemptFailed: Callbacks._failed,
    CallbackGaveUp: Callbacks._gave_up,
    JobDeleted: Callbacks._job_deleted,
}
