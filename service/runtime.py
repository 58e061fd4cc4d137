"""What every reconciler and request handler of one server process shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import httpx

from projections import State
from service.config import Config
from service.containers import DockerGateway
from service.engine import Engine
from service.layout import DataDir
from service.repo_secrets import RepoSecrets
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
    docker: DockerGateway | None = None
    """None when no Docker API answered at startup: jobs with sidecars are refused."""
    docker_error: str | None = None
    launched: set[str] = field(default_factory=set)
    """Jobs whose agent this process launched (the others it found at startup)."""

    @property
    def state(self) -> State:
        return self.engine.state

    @property
    def server_id(self) -> str:
        server_id = self.state.server.server_id
        assert server_id is not None, "the server is initialized before anything runs"
        return server_id

    def path(self, recorded: str) -> Path:
        return self.data_dir.path(recorded)
