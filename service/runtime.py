"""What every reconciler and request handler of one server process shares."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx

from projections import State
from service.config import Config
from service.containers import DockerGateway
from service.engine import Engine
from service.layout import DataDir
from service.repo_secrets import RepoSecrets
from service.sandbox.host import SandboxHost
from service.secrets_store import SecretsStore
from service.tasks import Tasks


@dataclass
class Runtime:
    data_dir: DataDir
    config: Config
    engine: Engine
    tasks: Tasks
    secrets: SecretsStore
    """Webhook secrets, and the store's root for the other kinds."""
    repo_secrets: RepoSecrets
    http: httpx.AsyncClient
    boot_id: str
    """This server process's boot (a fresh id per start), recorded in ``server.started``."""
    base_url: str
    """Where clients reach the API; webhook bodies link to the job there."""
    sandbox: SandboxHost
    """How agents are confined (`service.sandbox`), checked at startup."""
    docker: DockerGateway | None = None
    """None when no Docker API answered at startup: jobs with sidecars are refused."""
    docker_error: str | None = None
    launched: set[str] = field(default_factory=set)
    """Jobs whose agent this process launched (the others it found at startup)."""
    _job_locks: weakref.WeakValueDictionary[str, anyio.Lock] = field(
        default_factory=weakref.WeakValueDictionary
    )

    @property
    def state(self) -> State:
        return self.engine.state

    @property
    def server_id(self) -> str:
        server_id = self.state.server.server_id
        assert server_id is not None, "the server is initialized before anything runs"
        return server_id

    def hidden_from_agents(self, workspace: Path) -> list[str]:
        """What a sandbox around `workspace` hides: the data directory, and the other
        workspaces (the workspace root may lie outside the data directory)."""
        return sorted({str(self.data_dir.root), str(workspace.parent)})

    def path(self, recorded: str) -> Path:
        return self.data_dir.path(recorded)

    def job_lock(self, job_id: str) -> anyio.Lock:
        """The lock that orders one job's uploads and its start (see ``upload_files``); it
        lives as long as someone holds or waits for it."""
        lock = self._job_locks.get(job_id)
        if lock is None:
            lock = self._job_locks[job_id] = anyio.Lock()
        return lock
