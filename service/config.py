"""The server's configuration: an optional TOML file over embedded defaults.

Two kinds of setting live here. Those the domain's rules depend on (concurrency, timeouts,
agents, retention...) are the fields of ``projections.events.ServerSettings``, declared there
once with their defaults; the file's keys of that name are converted straight into it, checked
by the rule ``configure`` applies (``check_settings``), and recorded in the log at startup
(``server.configured``), so time travel judges each past seq by the settings then in force.
The rest only shape this process (``ProcessSettings``: snapshot interval, upload limit,
webhook timeouts, process supervision; and the agents' ``secret_env``) and are not history.

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

from projections.decide.server import check_settings
from projections.errors import DomainError
from projections.events import AgentSpec, ServerSettings
from service.agents.templates import AgentTemplate, TemplateError, parse_agents
from service.sandbox.host import DEFAULT_AGENT_USER
from service.sandbox.network import Allowed


class ConfigError(ValueError):
    """The config file is unusable; the message names the file and the field."""


class ProcessSettings(msgspec.Struct, kw_only=True, frozen=True):
    """The keys that only shape this process: never recorded, never judged by a rule."""

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


class Config(ProcessSettings, kw_only=True, frozen=True):
    """A loaded configuration (``load_config``): the process's keys, the domain's settings and
    the agents' credentials."""

    domain: ServerSettings = msgspec.field(default_factory=ServerSettings)
    agent_secrets: dict[str, dict[str, str]] = msgspec.field(default_factory=dict)
    """`[agents.NAME] secret_env` by agent: kept here, never in the settings (the log)."""

    def settings(self) -> ServerSettings:
        """The part the domain's rules depend on, as recorded in ``server.configured``."""
        return self.domain

    def secret_env(self, agent: str) -> dict[str, str]:
        """The agent's credentials (`[agents.NAME] secret_env`), checked at load time."""
        return dict(self.agent_secrets.get(agent, {}))


def _file_keys() -> type[msgspec.Struct]:
    """The TOML file's shape: ``ProcessSettings``' keys and ``ServerSettings``' fields, by
    name and with their types, each of the latter optional (an absent key keeps the default
    ``ServerSettings`` declares); ``agents`` as raw tables, which ``parse_agents`` reads."""
    fields = []
    for field in msgspec.structs.fields(ServerSettings):
        kind = dict[str, dict[str, Any]] if field.name == "agents" else field.type
        fields.append((field.name, kind | msgspec.UnsetType, msgspec.UNSET))
    return msgspec.defstruct(
        "ConfigFile",
        fields,
        bases=(ProcessSettings,),
        kw_only=True,
        frozen=True,
        forbid_unknown_fields=True,
    )


_FileKeys = _file_keys()


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
        keys = msgspec.convert(raw, _FileKeys)
    except msgspec.ValidationError as err:
        raise ConfigError(f"{where}: {_explain(str(err))}") from None
    given = {
        name: value
        for name in ServerSettings.__struct_fields__
        if (value := getattr(keys, name)) is not msgspec.UNSET
    }
    try:
        templates = parse_agents(given.pop("agents", {}))
    except TemplateError as err:
        raise ConfigError(f"{where}: {err}") from None
    settings = ServerSettings(
        **given, agents={name: _spec(template) for name, template in sorted(templates.items())}
    )
    try:
        check_settings(settings)
    except DomainError as err:
        raise ConfigError(f"{where}: {err.message}") from None
    process = {name: getattr(keys, name) for name in ProcessSettings.__struct_fields__}
    if process["snapshot_every"] < 1:
        raise ConfigError(f"{where}: snapshot_every: must be at least 1")
    try:
        for entry in process["agent_network_allow"]:
            Allowed(entry)
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None
    secrets = {name: dict(t.secret_env) for name, t in templates.items() if t.secret_env}
    return Config(**process, domain=settings, agent_secrets=secrets)


def _spec(template: AgentTemplate) -> AgentSpec:
    """What the log records of an agent: everything but its credentials."""
    return AgentSpec(
        command=template.command,
        env=template.env,
        resume_command=template.resume_command or [],
        network=template.network,
    )


def _explain(message: str) -> str:
    located = re.fullmatch(r"(.*) - at `\$\.?(.*)`", message)
    if located:
        return f"{located.group(2)}: {located.group(1)}"
    unknown = re.fullmatch(r"Object contains unknown field `(.*)`", message)
    if unknown:
        return f"unknown setting {unknown.group(1)!r}"
    return message
