"""Commands: what the service asks the domain to do. ``decide`` turns each into events or a
``DomainError``; a command itself is never stored.

Commands carry what only the imperative shell can know or make (ids it generated, hashes of
secrets, the identity of a process it spawned, the outcome of an HTTP request); ``decide``
adds the time it is given and everything derived from the state.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from projections.events import (
    Idempotency,
    RecoveryReport,
    RepoSettings,
    ResourceKind,
    Role,
    ServerSettings,
    Sidecar,
    StagingRemoval,
)

AttemptOutcome = Literal["delivered", "retry", "give_up"]
AgentStop = Literal["request", "deadline"]


class _Command(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every command."""


# --- server -------------------------------------------------------------------------------


class InitializeServer(_Command, frozen=True):
    server_id: str


class Configure(_Command, frozen=True):
    settings: ServerSettings


class StartServer(_Command, frozen=True):
    boot_id: str
    pid: int
    version: str


class StopServer(_Command, frozen=True):
    pass


class CompleteRecovery(_Command, frozen=True):
    report: RecoveryReport


class RecordSnapshot(_Command, frozen=True):
    seq: int
    file: str


# --- users --------------------------------------------------------------------------------


class AddUser(_Command, frozen=True):
    user_id: str
    username: str
    role: Role
    password_hash: str | None


class RemoveUser(_Command, frozen=True):
    user_id: str


class IssueToken(_Command, frozen=True):
    token_hash: str
    user_id: str
    label: str
    ttl_seconds: float | None


class RevokeToken(_Command, frozen=True):
    token_hash: str


# --- repositories -------------------------------------------------------------------------


class RegisterRepo(_Command, frozen=True):
    """Registers the repository and starts its clone (which holds its lock)."""

    repo: str
    git_url: str
    branch: str
    description: str = ""
    settings: RepoSettings = RepoSettings()
    credentials: bool = False
    """The shell keeps the URL's credentials in its secrets store; ``git_url`` shows ``***``."""


class ChangeRepoSettings(_Command, frozen=True):
    repo: str
    settings: RepoSettings


class FinishClone(_Command, frozen=True):
    """The clone's outcome: ``commit`` when it worked, ``error`` when it did not."""

    repo: str
    commit: str | None = None
    error: str | None = None


class RetryClone(_Command, frozen=True):
    repo: str


class DegradeRepo(_Command, frozen=True):
    repo: str
    reason: str


class RestoreRepo(_Command, frozen=True):
    repo: str


class UnregisterRepo(_Command, frozen=True):
    repo: str


# --- jobs ---------------------------------------------------------------------------------


class CallbackRequest(msgspec.Struct, frozen=True, kw_only=True):
    url: str


class CreateJob(_Command, frozen=True):
    job_id: str
    owner: str
    prompt: str
    repo: str
    agent: str | None = None
    model: str | None = None
    timeout_seconds: float | None = None
    git_pull: bool = True
    auto_cleanup: bool = False
    env: dict[str, str] = {}
    sidecars: list[Sidecar] = []
    callbacks: list[CallbackRequest] = []
    idempotency: Idempotency | None = None


class StartStaging(_Command, frozen=True):
    """Before the first upload of a job is written: its staging directory is recorded (where,
    ``naming.staging_path`` says)."""

    job_id: str


class StageFile(_Command, frozen=True):
    job_id: str
    name: str
    size: int
    sha256: str


class StartJob(_Command, frozen=True):
    job_id: str


class CancelJob(_Command, frozen=True):
    job_id: str


class DeleteJob(_Command, frozen=True):
    job_id: str


class Dispatch(_Command, frozen=True):
    """Fill free concurrency slots from the head of the run queue."""


class ReleaseStaleLock(_Command, frozen=True):
    """Recovery found a lock whose holder is no longer preparing or cloning."""

    repo: str


class FinishPreparation(_Command, frozen=True):
    """A batch's git pull / index step ended: ``commit`` on success, ``error`` otherwise."""

    batch_id: str
    generation: int
    commit: str | None = None
    error: str | None = None


class RecordWorkspace(_Command, frozen=True):
    """The job's workspace is made, where ``naming.workspace_path`` says."""

    job_id: str


class BeginLaunch(_Command, frozen=True):
    """The launch intent; the run directory is ``naming.run_path``'s."""

    job_id: str


class RecordProcessStarted(_Command, frozen=True):
    job_id: str
    pid: int
    process_start_time: float
    boot_id: str


class RecordExit(_Command, frozen=True):
    """The agent's process is gone, and this is what the shell saw of its end; ``decide``
    alone judges how the job ended (``decide.endings``)."""

    job_id: str
    code: int | None = None
    """The exit code the wrapper recorded."""
    signal: int | None = None
    """The signal that ended the agent, as the wrapper recorded it."""
    note: str | None = None
    """The wrapper's own words when it recorded neither (it could not start the agent, ...)."""
    stopped: AgentStop | None = None
    """The shell stopped the agent itself: its job was to stop (cancel, delete), or its
    deadline passed while it ran."""
    while_down: bool = False
    """Found ended at startup: it ended while no server watched it."""


class RecordStaleHeartbeat(_Command, frozen=True):
    """The agent still ran, but its heartbeat was ``heartbeat_age`` seconds old (None: it had
    no heartbeat file), stale by ``liveness.heartbeat_stale``: the shell killed it."""

    job_id: str
    heartbeat_age: float | None


class RecordDamagedRunDir(_Command, frozen=True):
    """A file of the job's run directory (identity, exit) failed its checksum."""

    job_id: str
    error: str


class FailJob(_Command, frozen=True):
    """The job cannot run (its launch failed, its repository is damaged)."""

    job_id: str
    reason: str


class Reattach(_Command, frozen=True):
    job_id: str
    boot_id: str


class PurgeJob(_Command, frozen=True):
    job_id: str


# --- callbacks ----------------------------------------------------------------------------


class StartAttempt(_Command, frozen=True):
    callback_id: str


class RecordAttempt(_Command, frozen=True):
    """``outcome`` is the sender's classification: delivered, retry, or give_up."""

    callback_id: str
    attempt: int
    outcome: AttemptOutcome
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None


class RetryCallback(_Command, frozen=True):
    job_id: str
    index: int


# --- cleanup, resources, staging ------------------------------------------------------------


class RecordArchived(_Command, frozen=True):
    path: str
    archive: str


class FinishCleanup(_Command, frozen=True):
    path: str
    error: str | None = None


class RecordContainer(_Command, frozen=True):
    """Docker made the container of the job's sidecar named ``sidecar`` (its name and image
    follow from the job's spec)."""

    job_id: str
    container_id: str
    sidecar: str


class RecordNetwork(_Command, frozen=True):
    """Docker made the job's network (named by ``naming.network_name``)."""

    job_id: str
    network_id: str


class RecordRemoval(_Command, frozen=True):
    """A container or network of ours is gone (``error`` when removing it failed)."""

    kind: ResourceKind
    resource_id: str
    error: str | None = None


class RecordOrphan(_Command, frozen=True):
    kind: ResourceKind
    resource_id: str
    job_id: str | None


class RemoveStaging(_Command, frozen=True):
    path: str
    reason: StagingRemoval


Command = (
    InitializeServer
    | Configure
    | StartServer
    | StopServer
    | CompleteRecovery
    | RecordSnapshot
    | AddUser
    | RemoveUser
    | IssueToken
    | RevokeToken
    | RegisterRepo
    | ChangeRepoSettings
    | FinishClone
    | RetryClone
    | DegradeRepo
    | RestoreRepo
    | UnregisterRepo
    | CreateJob
    | StartStaging
    | StageFile
    | StartJob
    | CancelJob
    | DeleteJob
    | Dispatch
    | ReleaseStaleLock
    | FinishPreparation
    | RecordWorkspace
    | BeginLaunch
    | RecordProcessStarted
    | RecordExit
    | RecordStaleHeartbeat
    | RecordDamagedRunDir
    | FailJob
    | Reattach
    | PurgeJob
    | StartAttempt
    | RecordAttempt
    | RetryCallback
    | RecordArchived
    | FinishCleanup
    | RecordContainer
    | RecordNetwork
    | RecordRemoval
    | RecordOrphan
    | RemoveStaging
)
