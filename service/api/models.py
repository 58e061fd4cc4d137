"""The API's JSON shapes, as msgspec Structs (camelCase on the wire, OpenAPI from them)."""

from __future__ import annotations

import msgspec


class _Body(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """Request bodies: unknown fields are refused (a typo must not be silently ignored)."""


class _Out(msgspec.Struct, rename="camel", kw_only=True):
    """Response bodies."""


# --- users -----------------------------------------------------------------------------------


class NewUser(_Body):
    username: str
    password: str
    role: str = "user"


class Login(_Body):
    username: str
    password: str


class UserOut(_Out):
    id: str
    username: str
    role: str


class TokenOut(_Out):
    token: str
    expires_at: float | None


# --- repositories ----------------------------------------------------------------------------


class RepoSettingsIn(_Body):
    index_command: list[str] = []
    default_agent: str | None = None
    env: dict[str, str] = {}
    """Values are write-only: kept in the secrets store, shown back as ``envNames``."""


class RepoSettingsOut(_Out):
    index_command: list[str]
    default_agent: str | None
    env_names: list[str]
    """The variables' names only, to every caller (their values are API keys and the like)."""


class NewRepo(_Body):
    name: str
    git_url: str
    branch: str = "main"
    description: str = ""
    settings: RepoSettingsIn = msgspec.field(default_factory=RepoSettingsIn)


class RepoOut(_Out):
    name: str
    git_url: str
    branch: str
    description: str
    settings: RepoSettingsOut
    clone_status: str
    clone_error: str | None
    commit: str | None
    prepare_error: str | None
    degraded: str | None
    active_jobs: int
    locked_by: str | None
    waiting: list[str]


# --- jobs ------------------------------------------------------------------------------------


class SidecarIn(_Body):
    name: str
    image: str
    command: list[str] = []
    env: dict[str, str] = {}


class JobOptionsIn(_Body):
    timeout_seconds: float | None = None
    git_pull: bool = True
    auto_cleanup: bool = False
    env: dict[str, str] = {}
    sidecars: list[SidecarIn] = []


class CallbackIn(_Body):
    url: str
    secret: str | None = None


class NewJob(_Body):
    prompt: str
    repository: str
    agent: str | None = None
    model: str | None = None
    options: JobOptionsIn = msgspec.field(default_factory=JobOptionsIn)
    callbacks: list[CallbackIn] = []


class CallbackCreated(_Out):
    index: int
    url: str
    secret: str
    """Returned by the creation response only (and its idempotent replays), never again."""


class JobCreatedOut(_Out):
    id: str
    status: str
    callbacks: list[CallbackCreated]


class AttemptOut(_Out):
    number: int
    started_at: float
    status: int | None
    error: str | None
    succeeded: bool
    next_retry_at: float | None


class CallbackOut(_Out):
    index: int
    url: str
    status: str
    webhook_id: str | None
    due_at: float | None
    attempts: list[AttemptOut]


class FileOut(_Out):
    name: str
    size: int
    sha256: str


class JobOut(_Out):
    id: str
    status: str
    owner: str
    repository: str
    agent: str
    model: str | None
    prompt: str
    options: JobOptionsIn
    queue_position: int | None
    estimated_start_at: float | None
    created_at: float
    enqueued_at: float | None
    started_at: float | None
    deadline: float | None
    ended_at: float | None
    exit_code: int | None
    error: str | None
    workspace: str | None
    batch: str | None
    files: list[FileOut]
    callbacks: list[CallbackOut]


class JobPage(_Out):
    jobs: list[JobOut]
    next_cursor: str | None


class StartedOut(_Out):
    id: str
    status: str
    queue_position: int | None


class EntryOut(_Out):
    name: str
    type: str
    size: int


class EventOut(_Out):
    seq: int
    ts: float
    actor: str
    type: str
    event: dict[str, object]
