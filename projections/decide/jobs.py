"""Deciding what clients ask of jobs: create, upload files, start, cancel, delete; and the
retention purge of deleted jobs."""

from __future__ import annotations

import re
from typing import Final

from projections import env_policy, naming
from projections.commands import (
    CancelJob,
    CreateJob,
    DeleteJob,
    PurgeJob,
    StageFile,
    StartJob,
    StartStaging,
)
from projections.decide import common
from projections.errors import conflict, forbidden, invalid, not_found
from projections.events import (
    CallbackSpec,
    Event,
    JobCancelled,
    JobCancelRequested,
    JobCreated,
    JobDeleted,
    JobDeleteRequested,
    JobEnqueued,
    JobFileStaged,
    JobOptions,
    JobPurged,
    Sidecar,
    StagingCreated,
)
from projections.jobs import Job
from projections.state import State

SIDECAR_NAME: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,30}")
DEFAULT_AGENT: Final = "claude-code"
MAX_PROMPT: Final = 1_000_000
MAX_CALLBACKS: Final = 10


def create(state: State, command: CreateJob, now: float) -> list[Event]:
    """A new job, or nothing when the same idempotency key already made this same job."""
    earlier = state.jobs.created_with(command.idempotency) if command.idempotency else None
    if earlier is not None:
        if not earlier.same_body:
            raise invalid(
                "idempotency_conflict",
                f"this Idempotency-Key was used for job {earlier.job_id!r} with another body",
            )
        return []
    if command.job_id in state.jobs.by_id or command.job_id in state.jobs.purged:
        raise conflict("job_exists", f"job id {command.job_id!r} is taken")
    owner = state.users.by_id.get(command.owner)
    if owner is None:
        raise not_found("user_not_found", f"no user {command.owner!r}")
    settings = state.server.settings
    if settings.sandbox == "none" and owner.role != "admin":
        raise forbidden(
            "sandbox_required",
            'this server runs agents without a sandbox (sandbox = "none"): only admins create jobs',
        )
    repo = common.repo(state, command.repo)
    if not command.prompt.strip():
        raise invalid("empty_prompt", "the prompt is empty")
    if len(command.prompt) > MAX_PROMPT:
        raise invalid("prompt_too_long", f"the prompt is over {MAX_PROMPT} characters")
    agent = command.agent or repo.settings.default_agent or DEFAULT_AGENT
    if agent not in settings.agents:
        known_agents = ", ".join(sorted(settings.agents)) or "none"
        raise invalid("unknown_agent", f"no agent {agent!r} (configured: {known_agents})")
    timeout = command.timeout_seconds
    if timeout is None:
        timeout = settings.default_timeout_seconds
    if not 0 < timeout <= settings.max_timeout_seconds:
        raise invalid(
            "invalid_timeout",
            f"timeoutSeconds must be in (0, {settings.max_timeout_seconds:g}]",
        )
    _check_env(command.env, settings.job_env_allow)
    _check_sidecars(command.sidecars)
    if len(command.callbacks) > MAX_CALLBACKS:
        raise invalid("too_many_callbacks", f"at most {MAX_CALLBACKS} callbacks per job")
    for callback in command.callbacks:
        if not callback.url.startswith(("http://", "https://")):
            raise invalid("invalid_callback_url", f"callback URL {callback.url!r} is not http(s)")
    return [
        JobCreated(
            job_id=command.job_id,
            owner=command.owner,
            prompt=command.prompt,
            repo=command.repo,
            agent=agent,
            options=JobOptions(
                timeout_seconds=timeout,
                model=command.model,
                git_pull=command.git_pull,
                auto_cleanup=command.auto_cleanup,
                env=command.env,
                sidecars=command.sidecars,
            ),
            callbacks=[
                CallbackSpec(
                    callback_id=naming.callback_id(command.job_id, index),
                    url=callback.url,
                    schedule=settings.callback_schedule,
                )
                for index, callback in enumerate(command.callbacks)
            ],
            idempotency=command.idempotency,
            at=now,
        )
    ]


def _check_env(env: dict[str, str], allow: list[str]) -> None:
    """The job's own variables: well-formed names, none of the built-in deny list, all within
    the admin's allowlist (see ``env_policy``). The agent template's and the repository's
    variables are the admin's and are not judged here."""
    common.check_env_names(env)
    for name in env:
        row = env_policy.denied(name)
        if row is not None:
            raise invalid("env_denied", f"a job cannot set {name!r}: {row.reason}")
        if not env_policy.allowed(name, allow):
            allows = ", ".join(allow) or "nothing"
            raise invalid(
                "env_not_allowed", f"a job cannot set {name!r}: job_env_allow allows {allows}"
            )


def _check_sidecars(sidecars: list[Sidecar]) -> None:
    names = [sidecar.name for sidecar in sidecars]
    if (
        len(set(names)) != len(names)
        or any(not SIDECAR_NAME.fullmatch(name) for name in names)
        or any(not sidecar.image.strip() for sidecar in sidecars)
    ):
        raise invalid("invalid_sidecar", "sidecars need distinct names (a-z 0-9 -) and an image")


def start_staging(state: State, command: StartStaging, now: float) -> list[Event]:
    found = common.job(state, command.job_id)
    common.require(found, StagingCreated, "job_started", "take files after it started")
    if state.staging.of_job(command.job_id) is not None:
        return []
    path = naming.staging_path(command.job_id)
    return [StagingCreated(path=path, job_id=command.job_id, at=now)]


def stage_file(state: State, command: StageFile, now: float) -> list[Event]:
    found = common.job(state, command.job_id)
    common.require(found, JobFileStaged, "job_started", "take files after it started")
    if state.staging.of_job(command.job_id) is None:
        raise conflict("no_staging", f"job {command.job_id!r} has no staging directory")
    return [
        JobFileStaged(
            job_id=command.job_id, name=command.name, size=command.size, sha256=command.sha256
        )
    ]


def start(state: State, command: StartJob, now: float) -> list[Event]:
    found = common.job(state, command.job_id)
    if found.status == "queued":
        return []
    common.require(found, JobEnqueued, "job_not_startable", "start")
    return [JobEnqueued(job_id=command.job_id, at=now)]


def _launched(found: Job) -> bool:
    """Its agent process exists or may exist (launch begun): it must be stopped first."""
    return found.run_dir is not None


def cancel(state: State, command: CancelJob, now: float) -> list[Event]:
    found = common.job(state, command.job_id)
    if found.status in ("cancelling", "deleting"):
        return []
    if found.terminal:
        raise conflict("job_finished", f"job {command.job_id!r} already {found.status}")
    if _launched(found):
        return [JobCancelRequested(job_id=command.job_id, at=now)]
    return _cancel_now(state, found, now, delete=False)


def _cancel_now(state: State, found: Job, now: float, *, delete: bool) -> list[Event]:
    ending = JobCancelled(job_id=found.job_id, at=now)
    return common.end_with_batch(state, found, ending, now, delete=delete)


def delete(state: State, command: DeleteJob, now: float) -> list[Event]:
    """Deleting an unfinished job is a request: it is cancelled, and deleted once its process
    is gone, so nothing it holds (lock, batch, containers, workspace) is orphaned."""
    found = common.job(state, command.job_id)
    if found.status == "deleting":
        return []
    if found.terminal:
        deleted: list[Event] = [JobDeleted(job_id=command.job_id, at=now)]
        marks = common.mark_workspace(state, found, "deleted") + common.mark_run_dir(state, found)
        return deleted + marks
    if _launched(found):
        return [JobDeleteRequested(job_id=command.job_id, at=now)]
    return _cancel_now(state, found, now, delete=True)


def purge(state: State, command: PurgeJob, now: float) -> list[Event]:
    found = state.jobs.get(command.job_id)
    if found is None:
        raise not_found("job_not_found", f"no job {command.job_id!r}")
    if found.deleted_at is None:
        raise conflict("job_not_deleted", f"job {command.job_id!r} is not deleted")
    keep_until = found.deleted_at + state.server.settings.retention_seconds
    if now < keep_until:
        raise conflict("retained", f"job {command.job_id!r} is retained until {keep_until:.0f}")
    blockers = purge_blockers(state, found)
    if blockers:
        raise conflict("job_busy", f"job {command.job_id!r} still has {', '.join(blockers)}")
    return [JobPurged(job_id=command.job_id)]


def purge_blockers(state: State, found: Job) -> list[str]:
    """What of a deleted job still needs it in the state."""
    blockers = []
    if found.batch_id is not None and found.batch_id in state.batches.active:
        blockers.append(f"its batch {found.batch_id!r} open")
    if any(d.status == "pending" for d in state.callbacks.of_job(found.job_id)):
        blockers.append("webhooks pending")
    if any(c.spec.job_id == found.job_id for c in state.cleanup.pending.values()):
        blockers.append("a cleanup pending")
    containers, networks = state.resources.of_job(found.job_id)
    if containers or networks:
        blockers.append("containers or networks")
    if state.staging.of_job(found.job_id) is not None:
        blockers.append("staged files")
    return blockers
