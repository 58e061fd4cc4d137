"""/health, /metrics, /stats and /api/admin/recovery: for operators and their monitoring."""

from __future__ import annotations

from typing import Any, get_args

from litestar import Request, Response, get

from projections.lifecycle import JobStatus
from projections.plain import as_plain
from projections.redact import redacted
from service.api.deps import caller, context, runtime_of
from service.api.problems import ApiError
from service.metrics import Gauges
from service.runtime import Runtime

STATUSES: tuple[str, ...] = get_args(JobStatus)


def _counts(rt: Runtime) -> dict[str, int]:
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for job in rt.state.jobs.by_id.values():
        if not job.deleted:
            counts[job.status] += 1
    return counts


@get("/health", opt={"public": True})
async def health(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """No token needed. ``status``: recovering, ready or degraded (the log failed, or a
    repository is damaged); 503 when writes are refused. ``notes`` say what works with
    limits (no Docker API: jobs with sidecars are refused, the others run)."""
    rt = runtime_of(request)
    state = rt.state
    problems = []
    if rt.engine.failure is not None:
        problems.append(f"log failed: {rt.engine.failure}")
    problems.extend(
        f"repository {r.name} degraded: {r.degraded}"
        for r in state.repos.by_name.values()
        if r.degraded
    )
    notes = [] if rt.docker is not None else [f"no Docker API: {rt.docker_error}"]
    if rt.sandbox.mode == "none":
        notes.append(f"no agent sandbox: {rt.sandbox.describe()}")
    if state.server.recovering:
        status = "recovering"
    elif problems:
        status = "degraded"
    else:
        status = "ready"
    writable = rt.engine.failure is None and not state.server.recovering
    body = {
        "status": status,
        "problems": problems,
        "notes": notes,
        "log": {"writable": rt.engine.failure is None, "lastSeq": state.last_seq},
        "jobs": _counts(rt),
        "serverId": state.server.server_id,
        "boot": rt.boot_id,
        "sandbox": {"mode": rt.sandbox.mode, "agentUser": rt.sandbox.user},
    }
    return Response(body, status_code=200 if writable else 503)


@get("/metrics", media_type="text/plain; version=0.0.4", opt={"public": True})
async def metrics(request: Request[Any, Any, Any]) -> str:
    """Any user's bearer token, unless the config says ``metrics_public = true`` (the route
    is public to the middleware, so that this choice is made here, once)."""
    rt = runtime_of(request)
    if not rt.config.metrics_public:
        caller(rt, request)
    state = rt.state
    gauges: Gauges = {
        "rewind_jobs": (
            "Jobs by status.",
            {(("status", s),): float(n) for s, n in _counts(rt).items()},
        ),
        "rewind_queue_depth": ("Jobs in the run queue.", {(): float(len(state.jobs.queue))}),
        "rewind_lock_waiters": (
            "Jobs waiting for a repository lock.",
            {(("repository", repo),): float(len(w)) for repo, w in state.jobs.waits.items()},
        ),
        "rewind_last_seq": ("Seq of the newest event.", {(): float(state.last_seq)}),
        "rewind_callbacks_pending": (
            "Webhook deliveries due or in flight.",
            {(): float(len(state.callbacks.pending))},
        ),
        "rewind_cleanups_pending": (
            "Cleanups not finished.",
            {(): float(len(state.cleanup.pending))},
        ),
        "rewind_agent_sandbox": (
            "The sandbox agents run in (1 for the mode in force).",
            {(("mode", rt.sandbox.mode),): 1.0},
        ),
    }
    return rt.engine.metrics.render(gauges, rt.engine.log.sync_latency)


@get("/stats")
async def stats(request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
    """Per repository and agent: jobs, success rate, run time and queue wait percentiles."""
    rt, _ = await context(request)
    rows = []
    for repo, agents in rt.state.stats.by_key.items():
        for agent, numbers in agents.items():
            rows.append(
                {
                    "repository": repo,
                    "agent": agent,
                    "jobs": numbers.jobs,
                    "successRate": numbers.success_rate,
                    "runTimeP50": numbers.run_time(50),
                    "runTimeP90": numbers.run_time(90),
                    "queueWaitP50": numbers.queue_wait(50),
                    "queueWaitP90": numbers.queue_wait(90),
                }
            )
    return rows


@get("/api/admin/recovery")
async def recovery(request: Request[Any, Any, Any]) -> dict[str, Any]:
    rt, user = await context(request)
    if user.role != "admin":
        raise ApiError(403, "forbidden", "this needs an admin token")
    reports = [
        {"seq": seq, **redacted(as_plain(report))} for seq, report in rt.state.server.recoveries
    ]
    return {
        "latest": reports[-1] if reports else None,
        "reports": reports,
        "crashes": rt.state.server.crash_seqs,
    }


ROUTES = [health, metrics, stats, recovery]
