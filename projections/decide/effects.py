"""Deciding the outcomes of side effects outside the log: workspace cleanup, containers and
networks, staged uploads. Failures are retried with a capped exponential backoff."""

from __future__ import annotations

from typing import Final

from projections import naming
from projections.commands import (
    FinishCleanup,
    RecordArchived,
    RecordContainer,
    RecordNetwork,
    RecordOrphan,
    RecordRemoval,
    RemoveStaging,
)
from projections.errors import conflict, invalid, not_found
from projections.events import (
    CleanupArchived,
    CleanupCompleted,
    CleanupFailed,
    ContainerCreated,
    ContainerRemoved,
    Event,
    NetworkCreated,
    NetworkRemoved,
    OrphanRemoved,
    ResourceRemovalFailed,
    StagingRemoved,
)
from projections.state import State

BACKOFF_FIRST: Final = 5.0
BACKOFF_MAX: Final = 3600.0


def backoff(failures: int) -> float:
    """Delay before the next try after ``failures`` failed ones: 5 s, 10 s, ... up to 1 h."""
    return float(min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** min(failures, 20)))


def record_archived(state: State, command: RecordArchived, now: float) -> list[Event]:
    if command.path not in state.cleanup.pending:
        raise not_found("cleanup_not_found", f"no pending cleanup of {command.path!r}")
    return [CleanupArchived(path=command.path, archive=command.archive)]


def finish_cleanup(state: State, command: FinishCleanup, now: float) -> list[Event]:
    cleanup = state.cleanup.pending.get(command.path)
    if cleanup is None:
        raise not_found("cleanup_not_found", f"no pending cleanup of {command.path!r}")
    if command.error is None:
        return [CleanupCompleted(path=command.path)]
    retry_at = now + backoff(cleanup.failures)
    return [CleanupFailed(path=command.path, error=command.error, next_retry_at=retry_at)]


def record_container(state: State, command: RecordContainer, now: float) -> list[Event]:
    """Recorded even for a job that ended meanwhile: what exists must be known to be removed.
    Its name and image follow from the job's sidecar of that name."""
    job = state.jobs.get(command.job_id)
    if job is None:
        raise not_found("job_not_found", f"no job {command.job_id!r}")
    sidecar = next((s for s in job.spec.options.sidecars if s.name == command.sidecar), None)
    if sidecar is None:
        raise not_found("sidecar_not_found", f"job {command.job_id!r} has no {command.sidecar!r}")
    if command.container_id in state.resources.containers:
        return []
    return [
        ContainerCreated(
            container_id=command.container_id,
            name=naming.container_name(command.job_id, sidecar.name),
            image=sidecar.image,
            job_id=command.job_id,
        )
    ]


def record_network(state: State, command: RecordNetwork, now: float) -> list[Event]:
    if state.jobs.get(command.job_id) is None:
        raise not_found("job_not_found", f"no job {command.job_id!r}")
    if command.network_id in state.resources.networks:
        return []
    name = naming.network_name(command.job_id)
    return [NetworkCreated(network_id=command.network_id, name=name, job_id=command.job_id)]


def record_removal(state: State, command: RecordRemoval, now: float) -> list[Event]:
    resources = state.resources
    rid = command.resource_id
    if command.kind == "container":
        known = rid in resources.containers
    elif command.kind == "network":
        known = rid in resources.networks
    else:
        raise invalid("invalid_kind", f"{command.kind} is not a container or network")
    if not known:
        raise not_found("resource_not_found", f"no {command.kind} {rid!r}")
    if command.error is not None:
        failures = 1 if rid in resources.failures else 0
        return [
            ResourceRemovalFailed(
                kind=command.kind,
                resource_id=rid,
                error=command.error,
                next_retry_at=now + backoff(failures),
            )
        ]
    if command.kind == "container":
        return [ContainerRemoved(container_id=rid)]
    return [NetworkRemoved(network_id=rid)]


def record_orphan(state: State, command: RecordOrphan, now: float) -> list[Event]:
    if command.resource_id in state.resources.containers or (
        command.resource_id in state.resources.networks
    ):
        raise conflict("not_orphan", f"{command.resource_id!r} is known: remove it as such")
    return [
        OrphanRemoved(kind=command.kind, resource_id=command.resource_id, job_id=command.job_id)
    ]


def remove_staging(state: State, command: RemoveStaging, now: float) -> list[Event]:
    staged = state.staging.dirs.get(command.path)
    if staged is None:
        raise not_found("staging_not_found", f"no staging {command.path!r}")
    job = state.jobs.get(staged.job_id)
    settings = state.server.settings
    allowed = {
        "consumed": job is not None and job.status == "preparing",
        "deleted": job is None or job.deleted or job.terminal,
        "stale": job is not None
        and job.status == "created"
        and staged.created_at + settings.staging_max_age_seconds <= now,
        "orphan": job is None,
    }[command.reason]
    if not allowed:
        raise conflict(
            "staging_in_use", f"staging {command.path!r} cannot be removed as {command.reason}"
        )
    return [StagingRemoved(path=command.path, reason=command.reason)]
