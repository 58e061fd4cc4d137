"""Sending webhooks: each due delivery (and each attempt a crash cut short) is attempted,
signed per Standard Webhooks, and its outcome recorded; the next attempt's time follows from
the schedule recorded with the callback. A receiver only ever hears of a finished job."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from projections.commands import RecordAttempt, StartAttempt
from projections.jobs import Job
from service.reconcile.loop import record
from service.runtime import Runtime
from service.webhooks import Timeouts, deliver


async def start_deliveries(rt: Runtime) -> None:
    callbacks = rt.state.callbacks
    for delivery in [*callbacks.in_flight(), *callbacks.due(time.time())]:
        cid = delivery.callback_id
        rt.tasks.start("callback", cid, send, rt, cid)


async def send(rt: Runtime, callback_id: str) -> None:
    started = await record(rt, StartAttempt(callback_id=callback_id))
    delivery = rt.state.callbacks.by_id.get(callback_id)
    job = rt.state.jobs.get(delivery.job_id) if delivery else None
    if not started or delivery is None or job is None or delivery.webhook_id is None:
        return
    attempt = delivery.attempts[-1].number
    secret = rt.secrets.get(callback_id)
    if secret is None:
        await record(
            rt,
            RecordAttempt(
                callback_id=callback_id,
                attempt=attempt,
                outcome="give_up",
                error="the callback's secret is missing from the secrets store",
            ),
        )
        return
    config = rt.config
    result = await deliver(
        rt.http,
        delivery.spec.url,
        secret,
        delivery.webhook_id,
        msgspec.json.encode(payload(rt, job)),
        now=int(time.time()),
        timeout=Timeouts(config.callback_connect_timeout, config.callback_total_timeout),
        forbid_private=config.callback_forbid_private,
    )
    await record(
        rt,
        RecordAttempt(
            callback_id=callback_id,
            attempt=attempt,
            outcome=result.outcome,
            status=result.status,
            error=result.error,
            retry_after=result.retry_after,
        ),
    )


def payload(rt: Runtime, job: Job) -> dict[str, Any]:
    """The webhook body: what a receiver needs to act on a finished job."""
    base = rt.base_url.rstrip("/")
    return {
        "type": f"job.{job.status}",
        "timestamp": job.ended_at,
        "data": {
            "id": job.job_id,
            "status": job.status,
            "exitCode": job.exit_code,
            "reason": job.reason,
            "repository": job.spec.repo,
            "agent": job.spec.agent,
            "createdAt": job.spec.at,
            "startedAt": job.started_at,
            "endedAt": job.ended_at,
            "links": {
                "job": f"{base}/jobs/{job.job_id}",
                "output": f"{base}/jobs/{job.job_id}/output",
            },
        },
    }
