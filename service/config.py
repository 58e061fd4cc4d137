"""The server's configuration: an optional TOML file over embedded defaults.

Two kinds of setting live here. Those the domain's rules depend on (concurrency, timeouts,
agents, retention...) become ``ServerSettings`` and are recorded in the log at startup
(``server.configured``), so time travel judges each past seq by the settings then in force.
The rest only shape this process (snapshot interval, upload limit, webhook timeouts, process
supervision) and are not history.

Example (every key optional)::

    max_concurrent = 5
    default_timeout_seconds = 3600
    max_timeout_seconds = 86400
    workspace_root = "workspaces"          # relative to the data directory, or absolute
    snapshot_every = 10000
    callback_forbid_private = true         # production: no webhooks to private addresses
    job_env_allow = ["APP_*", "DEBUG"]     # globs of what a job's env may set (default ["*"]),
                                           # never projections/env_policy.DENIED (LD_*, PATH...)
    sandbox = "bubblewrap"                 # or "none": agents unconfined, only admins' jobs
    agent_user = "rewind-agent"            # agents' account when the server runs as root
    agent_network_allow = ["192.0.2.10:8080"]  # reachable by agents despite the rules
    metrics_public = false                 # /metrics without a token (a scraper's network)

    [agents.my-agent]
    command = ["my-agent", "--model", "{model}", "--", "{prompt}"]
    env = { MY_AGENT_QUIET = "1" }
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from projections.events import AgentSpec, Sandbox, ServerSettings
from service.agents.templates import TemplateError, parse_agents
from service.sandbox.host import DEFAULT_AGENT_USER
from service.sandbox.network import Allowed


class ConfigError(ValueError):
    """The config file is unusable; the message names the file and the field."""


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    max_concurrent: int = 5
    default_timeout_seconds: float = 3600.0
    max_timeout_seconds: float = 86400.0
    prepare_timeout_seconds: float = 900.0
    heartbeat_stale_seconds: float = 120.0
    callback_schedule: list[float] = msgspec.field(
        default_factory=lambda: [5.0, 30.0, 120.0, 600.0, 3600.0]
    )
    staging_max_age_seconds: float = 86400.0
    retention_seconds: float = 7 * 86400.0
    workspace_root: str = "workspaces"
    snapshot_every: int = 10_000
    upload_max_bytes: int = 100 * 2**20
    callback_forbid_private: bool = False
    callback_connect_timeout: float = 5.0
    callback_total_timeout: float = 30.0
    heartbeat_interval: float = 2.0
    kill_grace_seconds: float = 10.0
    reconcile_interval: float = 1.0
    """Longest pause of a reconciler between looks at the state (they also wake on change)."""
    agent_user: str = DEFAULT_AGENT_USER
    """The account agents run as when the server runs as root (created when missing)."""
    agent_network_allow: list[str] = msgspec.field(default_factory=list)
    """Destinations agents may reach despite the sandbox's network rules: `ADDRESS`,
    `ADDRESS/PREFIX` or `ADDRESS:PORT` (e.g. a model gateway on a host port)."""
    metrics_public: bool = False
    """/metrics answers without a token. Off by default: the metrics name repositories and
    show the server's load to anyone who can reach the port."""
    agents: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    job_env_allow: list[str] = msgspec.field(default_factory=lambda: ["*"])
    sandbox: Sandbox = "bubblewrap"

    def settings(self) -> ServerSettings:
        """The part the domain's rules depend on, as recorded in ``server.configured``."""
        templates = parse_agents(self.agents)
        return ServerSettings(
            max_concurrent=self.max_concurrent,
            default_timeout_seconds=self.default_timeout_seconds,
            max_timeout_seconds=self.max_timeout_seconds,
            prepare_timeout_seconds=self.prepare_timeout_seconds,
            heartbeat_stale_seconds=self.heartbeat_stale_seconds,
            callback_schedule=self.callback_schedule,
            staging_max_age_seconds=self.staging_max_age_seconds,
            workspace_root=self.workspace_root,
            retention_seconds=self.retention_seconds,
            agents={
                name: AgentSpec(
                    command=t.command,
                    env=t.env,
                    resume_command=t.resume_command or [],
                    network=t.network,
                )
                for name, t in sorted(templates.items())
            },
            job_env_allow=self.job_env_allow,
            sandbox=self.sandbox,
        )

    def secret_env(self, agent: str) -> dict[str, str]:
        """The agent's credentials (`[agents.NAME] secret_env`), checked at load time."""
        table = self.agents.get(agent, {})
        return dict(table.get("secret_env", {}))


def load_config(path: Path | None, **overrides: Any) -> Config:
    """The config from ``path`` (the embedded defaults when None), with ``overrides`` on top."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text())
        except OSError as err:
            raise ConfigError(f"cannot read config {path}: {err.strerror}") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config {path} is not valid TOML: {err}") from None
    raw.update(overrides)
    where = str(path) if path else "config"
    try:
        config = msgspec.convert(raw, Config)
    except msgspec.ValidationError as err:
        raise ConfigError(f"{where}: {_explain(str(err))}") from None
    try:
        config.settings()
    except TemplateError as err:
        raise ConfigError(f"{where}: {err}") from None
    if config.max_concurrent < 1 or config.snapshot_every < 1:
        raise ConfigError(f"{where}: max_concurrent and snapshot_every must be at least 1")
    try:
        for entry in config.agent_network_allow:
            Allowed(entry)
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None
    if not 0 < config.default_timeout_seconds <= config.max_timeout_seconds:
        raise ConfigError(f"{where}: need 0 < default_timeout_seconds <= max_timeout_seconds")
    if not all(pattern.strip() for pattern in config.job_env_allow):
        raise ConfigError(f"{where}: job_env_allow: every pattern must be a non-empty string")
    return config


def _explain(message: str) -> str:
    located = re.fullmatch(r"(.*) - at `\$\.?(.*)`", message)
    if located:
        return f"{located.group(2)}: {located.group(1)}"
    unknown = re.fullmatch(r"Object contains unknown field `(.*)`", message)
    if unknown:
        return f"unknown setting {unknown.group(1)!r}"
    return message
