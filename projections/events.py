"""The event catalogue: every fact the server ever records, and nothing derived from facts.

Each event is a frozen, tagged msgspec Struct; the tag (``type``) is the stable name written to
the log, so renaming a class is free but renaming a tag is a schema change that needs an upcaster
(see ``envelope.py``). Leaf events hold only immutable data, so they are created with
``gc=False``: replaying millions of them must not feed the cyclic garbage collector.

Times inside events are float unix seconds and appear only where the time *is* the fact (a
retry is due then). When something happened is the envelope's ``ts``, for display only: the log's
seq is the sole order.
"""

from __future__ import annotations

from typing import Literal, get_args

import msgspec

BatchPhase = Literal["waiting", "preparing", "ready", "executing"]


class _Event(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    tag_field="type",
    gc=False,
    omit_defaults=False,
):
    """Common base so every event shares the tagging and immutability settings."""


# --- users and tokens ---------------------------------------------------------------------


class UserAdded(_Event, tag="user.added", frozen=True):
    user_id: str
    name: str
    role: str


class UserRemoved(_Event, tag="user.removed", frozen=True):
    user_id: str


class TokenIssued(_Event, tag="token.issued", frozen=True):
    """Only the hash of the token is ever logged: the log is readable by operators."""

    token_hash: str
    user_id: str
    label: str
    expires_at: float | None


class TokenRevoked(_Event, tag="token.revoked", frozen=True):
    token_hash: str


# --- repositories -------------------------------------------------------------------------


class RepoRegistered(_Event, tag="repo.registered", frozen=True):
    repo: str
    git_url: str
    branch: str
    settings: dict[str, str]


class RepoCloneStarted(_Event, tag="repo.clone-started", frozen=True):
    repo: str


class RepoCloneCompleted(_Event, tag="repo.clone-completed", frozen=True):
    repo: str
    commit: str


class RepoCloneFailed(_Event, tag="repo.clone-failed", frozen=True):
    repo: str
    error: str


class RepoSettingsChanged(_Event, tag="repo.settings-changed", frozen=True):
    """Carries the complete new settings, so no fold has to merge partial updates."""

    repo: str
    settings: dict[str, str]


class RepoDegraded(_Event, tag="repo.degraded", frozen=True):
    repo: str
    reason: str


class RepoUnregistered(_Event, tag="repo.unregistered", frozen=True):
    repo: str


# --- jobs ---------------------------------------------------------------------------------


class CallbackSpec(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A webhook subscription declared when the job is created."""

    url: str
    events: list[str]


class JobCreated(_Event, tag="job.created", frozen=True):
    job_id: str
    owner: str
    prompt: str
    repo: str
    agent: str
    options: dict[str, str]
    callbacks: list[CallbackSpec]
    idempotency_key_hash: str | None


class JobFileStaged(_Event, tag="job.file-staged", frozen=True):
    job_id: str
    name: str
    size: int
    sha256: str


class JobFileUnstaged(_Event, tag="job.file-unstaged", frozen=True):
    job_id: str
    name: str


class JobEnqueued(_Event, tag="job.enqueued", frozen=True):
    """The seq of this event is the job's queue position: no counter is stored anywhere."""

    job_id: str


class WaitStarted(_Event, tag="repo.wait-started", frozen=True):
    """The job waits for the repository's lock; FIFO order is the seq of this event."""

    repo: str
    job_id: str


class WaitEnded(_Event, tag="repo.wait-ended", frozen=True):
    repo: str
    job_id: str
    reason: str


class JobBatched(_Event, tag="job.batched", frozen=True):
    """The job joined an already formed batch to share its git pull and index step."""

    job_id: str
    batch_id: str


class JobPreparing(_Event, tag="job.preparing", frozen=True):
    job_id: str


class JobWorkspaceCreated(_Event, tag="job.workspace-created", frozen=True):
    job_id: str
    path: str


class JobProcessStarted(_Event, tag="job.process-started", frozen=True):
    """Process identity: a pid alone can be recycled, pid + start time + boot id cannot."""

    job_id: str
    pid: int
    process_start_time: float
    boot_id: str
    output_path: str
    heartbeat_path: str


class JobReattached(_Event, tag="job.reattached", frozen=True):
    job_id: str
    boot_id: str


class JobOutputCheckpoint(_Event, tag="job.output-checkpoint", frozen=True):
    job_id: str
    offset: int


class JobCompleted(_Event, tag="job.completed", frozen=True):
    job_id: str
    exit_code: int


class JobFailed(_Event, tag="job.failed", frozen=True):
    job_id: str
    reason: str


class JobTimedOut(_Event, tag="job.timed-out", frozen=True):
    job_id: str


class JobCancelRequested(_Event, tag="job.cancel-requested", frozen=True):
    job_id: str


class JobCancelled(_Event, tag="job.cancelled", frozen=True):
    job_id: str


class JobLost(_Event, tag="job.lost", frozen=True):
    job_id: str
    reason: str


class JobDeleted(_Event, tag="job.deleted", frozen=True):
    job_id: str


# --- repository locks ---------------------------------------------------------------------


class LockAcquired(_Event, tag="lock.acquired", frozen=True):
    """The fencing generation lets effects started under an old lease be told apart."""

    repo: str
    job_id: str
    generation: int


class LockReleased(_Event, tag="lock.released", frozen=True):
    repo: str
    job_id: str
    reason: str


# --- batches ------------------------------------------------------------------------------


class BatchFormed(_Event, tag="batch.formed", frozen=True):
    batch_id: str
    repo: str
    job_ids: list[str]


class BatchPhaseChanged(_Event, tag="batch.phase-changed", frozen=True):
    batch_id: str
    phase: BatchPhase


class BatchEnded(_Event, tag="batch.ended", frozen=True):
    batch_id: str


# --- callbacks (webhooks) -----------------------------------------------------------------


class CallbackScheduled(_Event, tag="callback.scheduled", frozen=True):
    callback_id: str
    job_id: str
    url: str
    event: str
    due_at: float


class CallbackAttemptStarted(_Event, tag="callback.attempt-started", frozen=True):
    """Written before the request is sent: an attempt without outcome was in flight."""

    callback_id: str
    attempt: int


class CallbackAttemptSucceeded(_Event, tag="callback.attempt-succeeded", frozen=True):
    callback_id: str
    attempt: int
    status: int


class CallbackAttemptFailed(_Event, tag="callback.attempt-failed", frozen=True):
    """``status`` for an HTTP answer, ``error`` for a network failure; no retry when None."""

    callback_id: str
    attempt: int
    status: int | None
    error: str | None
    next_retry_at: float | None


class CallbackGaveUp(_Event, tag="callback.gave-up", frozen=True):
    callback_id: str
    reason: str


# --- cleanup ------------------------------------------------------------------------------


class CleanupMarked(_Event, tag="cleanup.marked", frozen=True):
    """Written before anything is deleted, so a crash mid-delete is resumed, never forgotten."""

    path: str
    reason: str
    job_id: str | None


class CleanupCompleted(_Event, tag="cleanup.completed", frozen=True):
    path: str


class CleanupFailed(_Event, tag="cleanup.failed", frozen=True):
    path: str
    error: str


# --- containers and networks --------------------------------------------------------------


class ContainerCreated(_Event, tag="container.created", frozen=True):
    container_id: str
    name: str
    job_id: str | None


class ContainerRemoved(_Event, tag="container.removed", frozen=True):
    container_id: str


class NetworkCreated(_Event, tag="network.created", frozen=True):
    network_id: str
    name: str
    job_id: str | None


class NetworkRemoved(_Event, tag="network.removed", frozen=True):
    network_id: str


# --- staging ------------------------------------------------------------------------------


class StagingCreated(_Event, tag="staging.created", frozen=True):
    path: str
    job_id: str


class StagingRemoved(_Event, tag="staging.removed", frozen=True):
    path: str
    reason: str


# --- server lifecycle ---------------------------------------------------------------------


class RecoveryMetrics(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What one startup recovery found and did; exposed at /api/admin/recovery."""

    events_replayed: int
    snapshot_seq: int | None
    bytes_cut: int
    jobs_reattached: int
    jobs_lost: int
    locks_released: int
    callbacks_resumed: int
    cleanups_resumed: int
    orphans_removed: int
    duration_s: float


class ServerStarted(_Event, tag="server.started", frozen=True):
    """A ``server.started`` not preceded by ``server.stopping`` marks a crash."""

    boot_id: str
    pid: int
    version: str


class ServerStopping(_Event, tag="server.stopping", frozen=True):
    pass


class RecoveryCompleted(_Event, tag="recovery.completed", frozen=True):
    metrics: RecoveryMetrics


class SnapshotTaken(_Event, tag="snapshot.taken", frozen=True):
    seq: int
    file: str


Event = (
    UserAdded
    | UserRemoved
    | TokenIssued
    | TokenRevoked
    | RepoRegistered
    | RepoCloneStarted
    | RepoCloneCompleted
    | RepoCloneFailed
    | RepoSettingsChanged
    | RepoDegraded
    | RepoUnregistered
    | JobCreated
    | JobFileStaged
    | JobFileUnstaged
    | JobEnqueued
    | WaitStarted
    | WaitEnded
    | JobBatched
    | JobPreparing
    | JobWorkspaceCreated
    | JobProcessStarted
    | JobReattached
    | JobOutputCheckpoint
    | JobCompleted
    | JobFailed
    | JobTimedOut
    | JobCancelRequested
    | JobCancelled
    | JobLost
    | JobDeleted
    | LockAcquired
    | LockReleased
    | BatchFormed
    | BatchPhaseChanged
    | BatchEnded
    | CallbackScheduled
    | CallbackAttemptStarted
    | CallbackAttemptSucceeded
    | CallbackAttemptFailed
    | CallbackGaveUp
    | CleanupMarked
    | CleanupCompleted
    | CleanupFailed
    | ContainerCreated
    | ContainerRemoved
    | NetworkCreated
    | NetworkRemoved
    | StagingCreated
    | StagingRemoved
    | ServerStarted
    | ServerStopping
    | RecoveryCompleted
    | SnapshotTaken
)

EVENT_TYPES: tuple[type[Event], ...] = get_args(Event)

TAGS: dict[str, type[Event]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in EVENT_TYPES
}

TERMINAL_EVENTS: tuple[type[Event], ...] = (
    JobCompleted,
    JobFailed,
    JobTimedOut,
    JobCancelled,
    JobLost,
)
