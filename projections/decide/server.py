"""Deciding the server's own facts: identity, settings, boots, recoveries, snapshots."""

from __future__ import annotations

from projections.commands import (
    CompleteRecovery,
    Configure,
    InitializeServer,
    RecordSnapshot,
    StartServer,
    StopServer,
)
from projections.errors import conflict, invalid
from projections.events import (
    Event,
    RecoveryCompleted,
    ServerConfigured,
    ServerInitialized,
    ServerSettings,
    ServerStarted,
    ServerStopping,
    SnapshotTaken,
)
from projections.state import State


def initialize(state: State, command: InitializeServer, now: float) -> list[Event]:
    if state.server.server_id is not None:
        raise conflict("already_initialized", f"server is {state.server.server_id!r} already")
    return [ServerInitialized(server_id=command.server_id)]


def configure(state: State, command: Configure, now: float) -> list[Event]:
    settings = command.settings
    check_settings(settings)
    if settings == state.server.settings:
        return []
    return [ServerConfigured(settings=settings)]


def check_settings(settings: ServerSettings) -> None:
    """Refuse settings no rule can work with (``invalid_setting``), the message naming the
    key. The one check of them: the service's config loader runs it too, at startup."""
    if settings.max_concurrent < 1:
        raise invalid("invalid_setting", "max_concurrent: must be at least 1")
    if not 0 < settings.default_timeout_seconds <= settings.max_timeout_seconds:
        raise invalid(
            "invalid_setting",
            "default_timeout_seconds: need 0 < default_timeout_seconds <= max_timeout_seconds",
        )
    if any(delay < 0 for delay in settings.callback_schedule):
        raise invalid("invalid_setting", "callback_schedule: delays cannot be negative")
    if not all(pattern.strip() for pattern in settings.job_env_allow):
        raise invalid("invalid_setting", "job_env_allow: every pattern must be a non-empty string")
    for name, agent in settings.agents.items():
        if not agent.command:
            raise invalid("invalid_setting", f"agents.{name}.command: empty")


def start(state: State, command: StartServer, now: float) -> list[Event]:
    return [
        ServerStarted(boot_id=command.boot_id, pid=command.pid, version=command.version, at=now)
    ]


def stop(state: State, command: StopServer, now: float) -> list[Event]:
    if not state.server.up:
        raise conflict("not_running", "the server is not running")
    return [ServerStopping(at=now)]


def complete_recovery(state: State, command: CompleteRecovery, now: float) -> list[Event]:
    if not state.server.recovering:
        raise conflict("not_recovering", "no recovery is in progress")
    return [RecoveryCompleted(report=command.report)]


def record_snapshot(state: State, command: RecordSnapshot, now: float) -> list[Event]:
    return [SnapshotTaken(seq=command.seq, file=command.file)]
