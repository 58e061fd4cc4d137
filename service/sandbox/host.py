"""What the sandbox needs of the host: the agents' account, the tools, a working probe.

Checked once at startup (`prepare`), so a server that cannot sandbox refuses to start with the
reason instead of running agents unconfined; `sandbox = "none"` in the config is the explicit,
visible way to run without (then only admins' jobs run).
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import tempfile
from pathlib import Path

import msgspec
import psutil

from service.sandbox import bwrap, tools
from service.sandbox.spec import SandboxSpec

DEFAULT_AGENT_USER = "rewind-agent"
_OR_NONE = 'or set sandbox = "none" in the config to run agents unconfined (admins\' jobs only)'
_PROBE_TIMEOUT_S = 20.0


class SandboxUnavailableError(RuntimeError):
    """This host cannot run the sandbox; the message says what is missing and what to do."""


class SandboxHost(msgspec.Struct, frozen=True):
    """The sandbox as this server process runs it: shown by /health, /metrics, the log."""

    mode: str
    """"bubblewrap", or "none" (agents run unconfined: admins' jobs only)."""
    uid: int | None = None
    """The agents' uid when the server runs as root; None: the server's own."""
    gid: int | None = None
    user: str | None = None
    deny: list[str] = []
    """The host's own addresses, which no agent may reach."""
    allow: list[str] = []

    def describe(self) -> str:
        if self.mode == "none":
            return "none: agents run unconfined, with the server's rights; only admins' jobs run"
        who = f"user {self.user} (uid {self.uid})" if self.uid is not None else "the server's uid"
        return f"bubblewrap: namespaces, seccomp, no host sockets or local network; as {who}"

    def job_dirs(self, run_dir: Path) -> tuple[Path, Path]:
        """The agent's home and /tmp, inside its run directory (removed with it), the agent's
        own; the agent sees neither the run directory nor anything else in it."""
        dirs = (run_dir / "home", run_dir / "tmp")
        for path in dirs:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            bwrap.owned_by(path, self.uid, self.gid)
        return dirs

    def reader(self, workspace: Path, hide: list[str]) -> SandboxSpec | None:
        """A sandbox for the server's own commands on a workspace (git, when archiving it):
        the agent's uid, no network, nothing but the workspace and empty scratch space."""
        if self.mode == "none":
            return None
        return self.spec(workspace=workspace, home=None, tmp=None, hide=hide, network=False)

    def spec(
        self,
        *,
        workspace: Path,
        home: Path | None,
        tmp: Path | None,
        hide: list[str],
        network: bool,
    ) -> SandboxSpec:
        return SandboxSpec(
            workspace=str(workspace),
            home=None if home is None else str(home),
            tmp=None if tmp is None else str(tmp),
            hide=hide,
            uid=self.uid,
            gid=self.gid,
            network=network,
            allow=list(self.allow),
            deny=list(self.deny),
        )


def prepare(mode: str, agent_user: str, allow: list[str]) -> SandboxHost:
    """The sandbox this host runs, checked by running one; SandboxUnavailableError if none."""
    if mode == "none":
        return SandboxHost(mode="none")
    missing = [tool for tool in tools.NAMES if tools.find(tool) is None]
    if missing:
        raise SandboxUnavailableError(
            f"the agent sandbox needs {', '.join(missing)} (Debian: apt-get install bubblewrap "
            f"slirp4netns util-linux nftables); {_OR_NONE}"
        )
    uid = gid = None
    user = None
    if os.geteuid() == 0:
        account = ensure_user(agent_user)
        uid, gid, user = account.pw_uid, account.pw_gid, account.pw_name
    host = SandboxHost(
        mode="bubblewrap", uid=uid, gid=gid, user=user, deny=host_addresses(), allow=allow
    )
    _probe(host)
    return host


def ensure_user(name: str) -> pwd.struct_passwd:
    """The agents' account; created (a system account, no home, no login) when missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    command = [
        "useradd", "--system", "--user-group", "--no-create-home",
        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name,
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxUnavailableError(
            f"cannot create the agent user {name!r}: {exc}; {_OR_NONE}"
        ) from exc
    if result.returncode != 0 and not _exists(name):
        detail = result.stderr.decode("utf-8", "replace").strip()
        raise SandboxUnavailableError(
            f"cannot create the agent user {name!r}: {detail}; {_OR_NONE}"
        )
    return pwd.getpwnam(name)


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def host_addresses() -> list[str]:
    """Every IPv4 address of this host's interfaces (IPv6 is refused whole anyway)."""
    found = {
        address.address
        for addresses in psutil.net_if_addrs().values()
        for address in addresses
        if address.family == socket.AF_INET
    }
    return sorted(found)


def _probe(host: SandboxHost) -> None:
    """Run `true` in a full sandbox (network included): the namespaces, the uid switch, the
    NAT and the rules all work here, or the error says which did not."""
    with tempfile.TemporaryDirectory(prefix="rewind-sandbox-probe-") as scratch:
        root = Path(scratch)
        os.chmod(root, 0o755)
        dirs = [root / name for name in ("workspace", "home", "tmp")]
        for path in dirs:
            path.mkdir()
            bwrap.owned_by(path, host.uid, host.gid)
        spec = host.spec(workspace=dirs[0], home=dirs[1], tmp=dirs[2], hide=[], network=True)
        log = root / "probe.log"
        with open(log, "wb") as output:  # a scratch file, read back for the error message
            try:
                running = bwrap.start(
                    spec, ["true"], {"PATH": "/usr/bin:/bin"}, output=output.fileno()
                )
                try:
                    code = running.process.wait(timeout=_PROBE_TIMEOUT_S)
                finally:
                    running.close()
            except (bwrap.SandboxStartError, subprocess.TimeoutExpired) as exc:
                raise SandboxUnavailableError(_advice(f"{exc} {_said(log)}")) from exc
        if code != 0:
            raise SandboxUnavailableError(_advice(f"a sandboxed `true` exited {code}{_said(log)}"))


def _said(log: Path) -> str:
    text = log.read_text(errors="replace").strip()
    return f" ({text[-500:]})" if text else ""


def _advice(problem: str) -> str:
    return (
        f"the agent sandbox does not work on this host: {problem}. It needs unprivileged user "
        "namespaces (sysctl user.max_user_namespaces > 0, and on Debian/Ubuntu "
        "kernel.unprivileged_userns_clone = 1 / no AppArmor restriction on bwrap) and, for a "
        f"server that is not root, /dev/net/tun usable by its user; {_OR_NONE}"
    )
