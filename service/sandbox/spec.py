"""What the wrapper needs to know to put one agent in its sandbox; the server decides it."""

from __future__ import annotations

import msgspec

AGENT_HOME = "/home/agent"
"""The agent's home inside the sandbox (its job's own directory is bound there)."""


class SandboxSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One agent's sandbox. Paths are absolute paths of the host; the server makes the
    directories (owned by the agent's uid) before the launch."""

    workspace: str
    """Bound read-write at the same path; the agent's working directory."""
    home: str | None
    """The job's home directory, bound at `AGENT_HOME`; None: an empty tmpfs there."""
    tmp: str | None
    """The job's temporary directory, bound at /tmp; None: an empty tmpfs."""
    hide: list[str]
    """Host paths the agent must not see: directories become empty, files read as empty."""
    uid: int | None = None
    """Drop to this uid (and `gid`, no supplementary groups) before the sandbox starts; None:
    keep the wrapper's."""
    gid: int | None = None
    network: bool = True
    """False: no network at all but the sandbox's own loopback."""
    allow: list[str] = []
    """Destinations allowed despite the deny rules: `ADDRESS`, `ADDRESS/PREFIX` or
    `ADDRESS:PORT` (`[ADDRESS]:PORT` for IPv6)."""
    deny: list[str] = []
    """The host's own addresses, refused like the private ranges (added by the server)."""
