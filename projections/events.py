"""The event catalogue: every fact the server ever records, and nothing derived from facts.

Each event is a frozen, tagged msgspec Struct; the tag (``type``) is the stable name written to
the log, so renaming a class is free but renaming a tag or a field is a schema change that needs
an upcaster (see ``upcasters.py``). Leaf events hold only immutable data, so they are created
with ``gc=False``: replaying millions of them must not feed the cyclic garbage collector.

Times that rules use (deadlines, retry times, lease expiries, the start and end of a job for
the statistics) are facts inside the events, set by ``decide`` from the ``now`` it is given.
The envelope's ``ts`` is for display only, and the log's seq is the sole order.

Secrets never enter the log: passwords and API tokens appear only as hashes; webhook secrets,
the credentials of repository URLs and the values of repository variables live in 0600 files
beside it (the service's ``secrets`` store). Outputs for people hide the hashes too
(``redact.py``).
"""

from __future__ import annotations

from typing import Literal, get_args

import msgspec

Role = Literal["admin", "user"]
LockKind = Literal["clone", "prepare"]
BatchPhase = Literal["preparing", "ready", "executing", "failed"]
ResourceKind = Literal["container", "network", "staging", "workspace", "process"]
StagingRemoval = Literal["consumed", "deleted", "stale", "orphan"]
Sandbox = Literal["bubblewrap", "none"]


class _Event(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    tag_field="type",
    gc=False,
    omit_defaults=False,
    array_like=True,
):
    """Common base so every event shares the tagging and immutability settings.

    Events are written as arrays (``[tag, field, ...]``), not maps: 30 % fewer bytes in the
    log and a faster replay. So a field is appended, never inserted or reordered, without a
    schema change; ``plain.as_plain`` gives the field names back for display."""


class _Value(msgspec.Struct, frozen=True, kw_only=True, gc=False, array_like=True):
    """Base of the small immutable values events carry."""


# --- values carried by events ------------------------------------------------------------


class Sidecar(_Value, frozen=True):
    """A container started beside the agent (a code-index service, a database, ...)."""

    name: str
    image: str
    command: list[str] = []
    env: dict[str, str] = {}


class JobOptions(_Value, frozen=True):
    """Everything a job was asked to do beyond its prompt; defaults resolved by decide."""

    timeout_seconds: float
    model: str | None = None
    git_pull: bool = True
    auto_cleanup: bool = False
    env: dict[str, str] = {}
    sidecars: list[Sidecar] = []


class CallbackSpec(_Value, frozen=True):
    """A webhook declared with the job. Its secret is stored outside the log, by id."""

    callback_id: str
    url: str
    schedule: list[float]
    """Delays in seconds before each attempt after the first failure; give up after the last."""


class Idempotency(_Value, frozen=True):
    """Hashes of the client's Idempotency-Key (scoped to its owner) and of the request body."""

    key_hash: str
    body_hash: str


class RepoSettings(_Value, frozen=True):
    index_command: list[str] = []
    """Run in the clone after each pull, under the repository lock (e.g. a code indexer)."""
    default_agent: str | None = None
    env: dict[str, str] = {}
    """Values, as logs written before secrets left the log recorded them; now always empty."""
    env_names: list[str] = []
    """The repository's environment variables (for its index command and its agents), by
    name, sorted: their values are API keys and the like, kept in the secrets store."""

    @property
    def variables(self) -> list[str]:
        """Every variable the settings define, however recorded."""
        return sorted({*self.env, *self.env_names})


class AgentSpec(_Value, frozen=True):
    command: list[str]
    env: dict[str, str] = {}
    resume_command: list[str] = []
    network: bool = True
    """Whether the agent's sandbox has a network (its model's API); False: loopback only."""


class ServerSettings(_Value, frozen=True):
    """The settings rules depend on, recorded so any past seq is judged by its own settings.

    Their one declaration: the config file's keys of these names are converted straight into
    this struct (``service.config``), so these defaults are the server's. Fields are only ever
    appended (the struct is recorded as an array)."""

    max_concurrent: int = 5
    default_timeout_seconds: float = 3600.0
    max_timeout_seconds: float = 86400.0
    prepare_timeout_seconds: float = 900.0
    heartbeat_stale_seconds: float = 120.0
    callback_schedule: list[float] = msgspec.field(
        default_factory=lambda: [5.0, 30.0, 120.0, 600.0, 3600.0]
    )
    staging_max_age_seconds: float = 86400.0
    workspace_root: str = "workspaces"
    """Where job workspaces are made: relative to the data directory, or absolute."""
    retention_seconds: float = 7 * 86400.0
    """How long a deleted job's spec and prompt stay in state (its history stays in the log)."""
    agents: dict[str, AgentSpec] = {}
    job_env_allow: list[str] = msgspec.field(default_factory=lambda: ["*"])
    """fnmatch globs (case-sensitive) of the variables a job may set, within what
    ``env_policy.DENIED`` always refuses; ``["*"]`` allows every other name, ``[]`` none."""
    sandbox: Sandbox = "bubblewrap"
    """How agents are confined. ``"none"`` runs them as the server's own user, so only admins
    may create jobs there (``sandbox_required``)."""


class RecoveryReport(_Value, frozen=True):
    """What one startup recovery found and did; exposed at /api/admin/recovery."""

    phases: dict[str, float]
    """Seconds spent in each phase, in the order they ran."""
    snapshot_seq: int | None
    snapshots_skipped: list[str]
    events_replayed: int
    torn_bytes_cut: int
    zero_fill_trimmed: int
    jobs_reattached: int
    jobs_finished_while_down: int
    jobs_lost: int
    jobs_relaunched: int
    preparations_redone: int
    locks_released: int
    callbacks_resumed: int
    cleanups_resumed: int
    orphans_removed: int
    repos_degraded: int


# --- users and tokens ---------------------------------------------------------------------


class UserAdded(_Event, tag="user.added", frozen=True):
    user_id: str
    username: str
    role: Role
    password_hash: str | None
    """scrypt, with its parameters and salt in the string; None for token-only users."""


class UserRemoved(_Event, tag="user.removed", frozen=True):
    user_id: str


class TokenIssued(_Event, tag="token.issued", frozen=True):
    """Only the token's hash is logged: the log is readable by operators."""

    token_hash: str
    user_id: str
    label: str
    expires_at: float | None


class TokenRevoked(_Event, tag="token.revoked", frozen=True):
    token_hash: str
    reason: str


# --- repositories -------------------------------------------------------------------------


class RepoRegistered(_Event, tag="repo.registered", frozen=True):
    repo: str
    git_url: str
    """With ``***`` for its credentials (``https://bob:***@host/x.git``) when ``credentials``."""
    branch: str
    description: str
    settings: RepoSettings
    credentials: bool = False
    """The URL's credentials were split off at registration, into the secrets store; git gets
    them from there. (Logs written before that hold them in ``git_url`` itself.)"""


class RepoSettingsChanged(_Event, tag="repo.settings-changed", frozen=True):
    """Carries the complete new settings, so no fold has to merge partial updates."""

    repo: str
    settings: RepoSettings


class RepoCloneStarted(_Event, tag="repo.clone-started", frozen=True):
    """Takes the repository's lock (kind clone) until the clone completes or fails."""

    repo: str
    generation: int
    lease_expires_at: float


class RepoCloneCompleted(_Event, tag="repo.clone-completed", frozen=True):
    repo: str
    commit: str


class RepoCloneFailed(_Event, tag="repo.clone-failed", frozen=True):
    repo: str
    error: str


class RepoDegraded(_Event, tag="repo.degraded", frozen=True):
    """The clone is unusable (missing, broken git metadata); the server itself stays up."""

    repo: str
    reason: str


class RepoRestored(_Event, tag="repo.restored", frozen=True):
    repo: str


class RepoUnregistered(_Event, tag="repo.unregistered", frozen=True):
    repo: str


# --- jobs ---------------------------------------------------------------------------------


class JobCreated(_Event, tag="job.created", frozen=True):
    job_id: str
    owner: str
    prompt: str
    repo: str
    agent: str
    options: JobOptions
    callbacks: list[CallbackSpec]
    idempotency: Idempotency | None
    at: float


class JobFileStaged(_Event, tag="job.file-staged", frozen=True):
    job_id: str
    name: str
    size: int
    sha256: str


class JobEnqueued(_Event, tag="job.enqueued", frozen=True):
    """The seq of this event is the job's place in the run queue: no counter is stored."""

    job_id: str
    at: float


class JobWaiting(_Event, tag="job.waiting", frozen=True):
    """Dispatched while its repository's lock is taken: waits FIFO by the seq of this event."""

    job_id: str
    repo: str


class JobWorkspaceCreated(_Event, tag="job.workspace-created", frozen=True):
    job_id: str
    path: str


class JobLaunching(_Event, tag="job.launching", frozen=True):
    """Intent, durable before the agent is spawned: recovery looks in ``run_dir`` for it."""

    job_id: str
    run_dir: str


class JobProcessStarted(_Event, tag="job.process-started", frozen=True):
    """Process identity: a pid alone can be recycled, pid + start time + boot id cannot."""

    job_id: str
    pid: int
    process_start_time: float
    boot_id: str
    started_at: float
    deadline: float


class JobReattached(_Event, tag="job.reattached", frozen=True):
    job_id: str
    boot_id: str


class JobCompleted(_Event, tag="job.completed", frozen=True):
    """The agent exited with code 0."""

    job_id: str
    at: float


class JobFailed(_Event, tag="job.failed", frozen=True):
    """The agent exited non-zero (``exit_code``), or the job could not run (``reason``)."""

    job_id: str
    reason: str
    exit_code: int | None
    at: float


class JobTimedOut(_Event, tag="job.timed-out", frozen=True):
    job_id: str
    at: float


class JobCancelRequested(_Event, tag="job.cancel-requested", frozen=True):
    """The job has a process (or is launching one) that must be stopped first."""

    job_id: str
    at: float


class JobDeleteRequested(_Event, tag="job.delete-requested", frozen=True):
    """Like a cancel request, and the job is deleted once its process is gone."""

    job_id: str
    at: float


class JobCancelled(_Event, tag="job.cancelled", frozen=True):
    job_id: str
    at: float


class JobLost(_Event, tag="job.lost", frozen=True):
    job_id: str
    reason: str
    at: float


class JobDeleted(_Event, tag="job.deleted", frozen=True):
    """Hidden from the API; its resources are cleaned up; purged from state later."""

    job_id: str
    at: float


class JobPurged(_Event, tag="job.purged", frozen=True):
    """Retention: a deleted job's spec and prompt leave the state (the log keeps them)."""

    job_id: str


# --- repository locks ---------------------------------------------------------------------


class LockReleased(_Event, tag="lock.released", frozen=True):
    """A repository lock is taken by the fact that needs it (``batch.formed``,
    ``repo.clone-started``) and always given back by this explicit event, never implicitly
    when its holder ends: a lock outliving its holder is a bug the invariants must see."""

    repo: str
    holder: str
    generation: int
    reason: str


# --- batches ------------------------------------------------------------------------------


class BatchFormed(_Event, tag="batch.formed", frozen=True):
    """Jobs of one repository sharing one git pull / index step. Forming the batch takes the
    repository's lock (kind prepare, this fencing generation) and moves its members to
    preparing, in one fact, so no prefix of the group shows a batch without its lock."""

    batch_id: str
    repo: str
    job_ids: list[str]
    generation: int
    lease_expires_at: float


class BatchPrepared(_Event, tag="batch.prepared", frozen=True):
    batch_id: str
    commit: str


class BatchFailed(_Event, tag="batch.failed", frozen=True):
    """The preparation failed: every member still preparing fails with ``error``."""

    batch_id: str
    error: str
    at: float


class BatchEnded(_Event, tag="batch.ended", frozen=True):
    batch_id: str


# --- callbacks (webhooks) -----------------------------------------------------------------


class CallbackDue(_Event, tag="callback.due", frozen=True):
    """The delivery intent, written with the job's terminal event; ``webhook_id`` is stable."""

    callback_id: str
    job_id: str
    webhook_id: str
    due_at: float


class CallbackAttemptStarted(_Event, tag="callback.attempt-started", frozen=True):
    """Written before the request is sent: an attempt without outcome was in flight."""

    callback_id: str
    attempt: int
    at: float


class CallbackAttemptSucceeded(_Event, tag="callback.attempt-succeeded", frozen=True):
    callback_id: str
    attempt: int
    status: int
    at: float


class CallbackAttemptFailed(_Event, tag="callback.attempt-failed", frozen=True):
    """``status`` for an HTTP answer, ``error`` for a network failure."""

    callback_id: str
    attempt: int
    status: int | None
    error: str | None
    next_retry_at: float | None
    """None: no retry is scheduled (a ``callback.gave-up`` follows in the same group)."""


class CallbackGaveUp(_Event, tag="callback.gave-up", frozen=True):
    callback_id: str
    reason: str


class CallbackRetryRequested(_Event, tag="callback.retry-requested", frozen=True):
    """An operator's manual re-send of a delivery that gave up."""

    callback_id: str
    at: float


# --- cleanup ------------------------------------------------------------------------------


class CleanupMarked(_Event, tag="cleanup.marked", frozen=True):
    """Written before anything is deleted, so a crash mid-delete is resumed, never forgotten."""

    path: str
    reason: str
    job_id: str | None


class CleanupArchived(_Event, tag="cleanup.archived", frozen=True):
    """Uncommitted changes were saved before the directory goes."""

    path: str
    archive: str


class CleanupCompleted(_Event, tag="cleanup.completed", frozen=True):
    path: str


class CleanupFailed(_Event, tag="cleanup.failed", frozen=True):
    path: str
    error: str
    next_retry_at: float


# --- containers and networks --------------------------------------------------------------


class ContainerCreated(_Event, tag="container.created", frozen=True):
    container_id: str
    name: str
    image: str
    job_id: str


class ContainerRemoved(_Event, tag="container.removed", frozen=True):
    container_id: str


class NetworkCreated(_Event, tag="network.created", frozen=True):
    network_id: str
    name: str
    job_id: str


class NetworkRemoved(_Event, tag="network.removed", frozen=True):
    network_id: str


class ResourceRemovalFailed(_Event, tag="resource.removal-failed", frozen=True):
    """A container or network could not be removed; retried at ``next_retry_at``."""

    kind: ResourceKind
    resource_id: str
    error: str
    next_retry_at: float


class OrphanRemoved(_Event, tag="orphan.removed", frozen=True):
    """Something of ours that the state does not know (created just before a crash)."""

    kind: ResourceKind
    resource_id: str
    job_id: str | None


# --- staging ------------------------------------------------------------------------------


class StagingCreated(_Event, tag="staging.created", frozen=True):
    """Intent, durable before the first upload of a job is written to ``path``."""

    path: str
    job_id: str
    at: float


class StagingRemoved(_Event, tag="staging.removed", frozen=True):
    path: str
    reason: StagingRemoval


# --- server lifecycle ---------------------------------------------------------------------


class ServerInitialized(_Event, tag="server.initialized", frozen=True):
    """The first event of every log: a stable server id, labelled on its containers."""

    server_id: str


class ServerConfigured(_Event, tag="server.configured", frozen=True):
    settings: ServerSettings


class ServerStarted(_Event, tag="server.started", frozen=True):
    """A ``server.started`` not preceded by ``server.stopping`` marks a crash."""

    boot_id: str
    pid: int
    version: str
    at: float


class ServerStopping(_Event, tag="server.stopping", frozen=True):
    at: float


class RecoveryCompleted(_Event, tag="recovery.completed", frozen=True):
    report: RecoveryReport


class SnapshotTaken(_Event, tag="snapshot.taken", frozen=True):
    seq: int
    file: str


class EventRetired(_Event, tag="event.retired", frozen=True):
    """What an upcaster turns an old event with no meaning today into: a seq that changes
    nothing, so old logs keep their numbering."""

    original_type: str


Event = (
    UserAdded
    | UserRemoved
    | TokenIssued
    | TokenRevoked
    | RepoRegistered
    | RepoSettingsChanged
    | RepoCloneStarted
    | RepoCloneCompleted
    | RepoCloneFailed
    | RepoDegraded
    | RepoRestored
    | RepoUnregistered
    | JobCreated
    | JobFileStaged
    | JobEnqueued
    | JobWaiting
    | JobWorkspaceCreated
    | JobLaunching
    | JobProcessStarted
    | JobReattached
    | JobCompleted
    | JobFailed
    | JobTimedOut
    | JobCancelRequested
    | JobDeleteRequested
    | JobCancelled
    | JobLost
    | JobDeleted
    | JobPurged
    | LockReleased
    | BatchFormed
    | BatchPrepared
    | BatchFailed
    | BatchEnded
    | CallbackDue
    | CallbackAttemptStarted
    | CallbackAttemptSucceeded
    | CallbackAttemptFailed
    | CallbackGaveUp
    | CallbackRetryRequested
    | CleanupMarked
    | CleanupArchived
    | CleanupCompleted
    | CleanupFailed
    | ContainerCreated
    | ContainerRemoved
    | NetworkCreated
    | NetworkRemoved
    | ResourceRemovalFailed
    | OrphanRemoved
    | StagingCreated
    | StagingRemoved
    | ServerInitialized
    | ServerConfigured
    | ServerStarted
    | ServerStopping
    | RecoveryCompleted
    | SnapshotTaken
    | EventRetired
)

EVENT_TYPES: tuple[type[Event], ...] = get_args(Event)

TAGS: dict[str, type[Event]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in EVENT_TYPES
}


def tag_of(cls: type[Event]) -> str:
    """The stable name an event type is written under."""
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str)
    return tag
