"""The names rewind gives to what it makes for a job or a repository, in one place.

The shell asks here where to make a workspace, a run directory or a staging directory, and
what to call a job's Docker network and containers; ``decide`` derives the very same names for
the events that record them, so a command never carries a path or a name the domain could
compute itself. Paths are relative to the data directory (a workspace root may be absolute).

The upcasters keep their own copies of the callback and webhook ids: they restate what the v1
server derived, which must not follow a later change here.
"""

from __future__ import annotations

from projections.events import ServerSettings


def workspace_path(settings: ServerSettings, job_id: str) -> str:
    """Where a job's workspace is made: under the configured root (relative to the data
    directory, or absolute)."""
    return f"{settings.workspace_root.rstrip('/')}/{job_id}"


def run_path(job_id: str) -> str:
    """Where a job's agent run directory (identity, heartbeat, output, exit code) lives:
    outside the workspace, so the agent cannot delete or forge it."""
    return f"runs/{job_id}"


def staging_path(job_id: str) -> str:
    """Where a job's uploads wait until its workspace exists."""
    return f"staging/{job_id}"


def clone_path(repo: str) -> str:
    """Where a registered repository's clone lives."""
    return f"repos/{repo}"


def network_name(job_id: str) -> str:
    """The Docker network of a job's sidecars; found again by this name after a crash."""
    return f"rewind-{job_id}"


def container_name(job_id: str, sidecar: str) -> str:
    """The Docker container of one of a job's sidecars; found again by name after a crash."""
    return f"{network_name(job_id)}-{sidecar}"


def callback_id(job_id: str, index: int) -> str:
    """A job's ``index``-th webhook: stable and derived, so it survives any restart."""
    return f"{job_id}-cb{index}"


def webhook_id(callback_id: str) -> str:
    """The ``webhook-id`` every attempt of a delivery sends: receivers dedupe by it."""
    return f"msg_{callback_id}"
