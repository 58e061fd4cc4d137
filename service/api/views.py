"""State, as the API shows it. Only what the caller may see; secrets never."""

from __future__ import annotations

import math
import time

from projections import State
from projections.jobs import Job
from projections.redact import redact_url
from projections.repos import Repo
from projections.users import User
from service.api.models import (
    AttemptOut,
    CallbackOut,
    FileOut,
    JobOptionsIn,
    JobOut,
    RepoOut,
    RepoSettingsOut,
    SidecarIn,
)
from service.api.problems import ApiError


def visible_job(state: State, user: User, job_id: str) -> Job:
    """The job if this caller may see it; 404 otherwise (never 403: ids must not leak)."""
    job = state.jobs.get(job_id)
    if job is None or job.deleted or (user.role != "admin" and job.spec.owner != user.user_id):
        raise ApiError(404, "job_not_found", f"no job {job_id!r}")
    return job


def job_out(state: State, job: Job) -> JobOut:
    spec = job.spec
    options = spec.options
    position = state.jobs.queue_position(job.job_id)
    return JobOut(
        id=job.job_id,
        status=job.status,
        owner=spec.owner,
        repository=spec.repo,
        agent=spec.agent,
        model=options.model,
        prompt=spec.prompt,
        options=JobOptionsIn(
            timeout_seconds=options.timeout_seconds,
            git_pull=options.git_pull,
            auto_cleanup=options.auto_cleanup,
            env=options.env,
            sidecars=[
                SidecarIn(name=s.name, image=s.image, command=s.command, env=s.env)
                for s in options.sidecars
            ],
        ),
        queue_position=position,
        estimated_start_at=estimated_start(state, job, position),
        created_at=spec.at,
        enqueued_at=job.enqueued_at,
        started_at=job.started_at,
        deadline=job.deadline,
        ended_at=job.ended_at,
        exit_code=job.exit_code,
        error=job.reason if job.status != "completed" else None,
        workspace=job.workspace,
        batch=job.batch_id,
        files=[FileOut(name=f.name, size=f.size, sha256=f.sha256) for f in job.files.values()],
        callbacks=callbacks_out(state, job),
    )


def estimated_start(state: State, job: Job, position: int | None) -> float | None:
    """From the statistics: rounds of ``max_concurrent`` jobs ahead, each the median run time
    of this job's repository and agent. None until there is a median to go by."""
    if position is None:
        return None
    stats = state.stats.of(job.spec.repo, job.spec.agent)
    median = stats.run_time(50) if stats else None
    if median is None:
        return None
    rounds = math.ceil(position / state.server.settings.max_concurrent)
    return time.time() + rounds * median


def callbacks_out(state: State, job: Job) -> list[CallbackOut]:
    return [
        CallbackOut(
            index=d.index,
            url=d.spec.url,
            status=d.status,
            webhook_id=d.webhook_id,
            due_at=d.due_at,
            attempts=[
                AttemptOut(
                    number=a.number,
                    started_at=a.started_at,
                    status=a.status,
                    error=a.error,
                    succeeded=a.succeeded,
                    next_retry_at=a.next_retry_at,
                )
                for a in d.attempts
            ],
        )
        for d in state.callbacks.of_job(job.job_id)
    ]


def repo_out(state: State, repo: Repo) -> RepoOut:
    lock = state.locks.holder(repo.name)
    settings = repo.settings
    return RepoOut(
        name=repo.name,
        git_url=redact_url(repo.spec.git_url),
        branch=repo.spec.branch,
        description=repo.spec.description,
        settings=RepoSettingsOut(
            index_command=settings.index_command,
            default_agent=settings.default_agent,
            env_names=settings.variables,
        ),
        clone_status=repo.clone,
        clone_error=repo.clone_error,
        commit=repo.commit,
        prepare_error=repo.prepare_error,
        degraded=repo.degraded,
        active_jobs=len(state.jobs.by_repo.get(repo.name, {})),
        locked_by=None if lock is None else lock.holder,
        waiting=state.jobs.waiters(repo.name),
    )
