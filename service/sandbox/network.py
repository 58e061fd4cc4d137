"""The agent's network: its own namespace, user-mode NAT to the internet, nothing local.

slirp4netns gives the namespace a tap device whose traffic it relays through ordinary sockets
of the host (`--disable-host-loopback`: its gateway never leads to the host's 127.0.0.1). The
nftables rules below are loaded into the agent's namespace from outside before the agent
starts; the agent holds no capability in that namespace and cannot change them.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import select
import subprocess
from collections.abc import Sequence

from service.sandbox import tools

SLIRP_DNS = "10.0.2.3"
"""slirp4netns' DNS forwarder, the sandbox's only name server."""
RESOLV_CONF = f"nameserver {SLIRP_DNS}\n".encode()
SETUP_TIMEOUT_S = 10.0
_NS_GET_USERNS = 0xB701

DENIED_V4 = (
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",  # private (RFC 1918); slirp's own 10.0.2.0/24 is in here
    "100.64.0.0/10",  # shared address space (carrier-grade NAT)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local: cloud metadata endpoints live at 169.254.169.254
    "172.16.0.0/12",  # private
    "192.0.0.0/24",  # IETF protocol assignments
    "192.168.0.0/16",  # private
    "198.18.0.0/15",  # benchmarking
    "224.0.0.0/3",  # multicast and reserved, broadcast
)
"""IPv4 destinations an agent never reaches (besides the host's own addresses). IPv6 is
refused whole: slirp4netns runs without it, and the rules say so explicitly."""


class NetworkSetupError(RuntimeError):
    """slirp4netns or nft failed; the agent must not start."""


class Allowed:
    """One `agent_network_allow` entry: an address or network, and optionally one TCP port."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.port: int | None = None
        host = text
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            if rest:
                self.port = _port(text, rest.removeprefix(":"))
        elif text.count(":") == 1:
            host, port = text.split(":")
            self.port = _port(text, port)
        try:
            self.network = ipaddress.ip_network(host, strict=False)
        except ValueError:
            raise ValueError(
                f"agent_network_allow: {text!r} is not ADDRESS, ADDRESS/PREFIX or ADDRESS:PORT"
            ) from None

    def rule(self) -> str:
        family = "ip" if self.network.version == 4 else "ip6"
        port = "" if self.port is None else f" tcp dport {self.port}"
        return f"{family} daddr {self.network}{port} accept"


def _port(text: str, port: str) -> int:
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"agent_network_allow: {text!r} has no valid port")
    return int(port)


def ruleset(allow: Sequence[str], deny: Sequence[str]) -> str:
    """The nftables rules of one agent's namespace: allowed first, then the refusals."""
    denied_v4 = [*DENIED_V4, *(str(ipaddress.ip_network(a)) for a in deny if ":" not in a)]
    lines = [
        "table inet rewind_sandbox {",
        "  chain output {",
        "    type filter hook output priority 0; policy accept;",
        '    oifname "lo" accept',
        f"    ip daddr {SLIRP_DNS} meta l4proto {{ tcp, udp }} th dport 53 accept",
        *(f"    {Allowed(entry).rule()}" for entry in allow),
        f"    ip daddr {{ {', '.join(denied_v4)} }} reject with icmp type admin-prohibited",
        "    meta nfproto ipv6 reject with icmpv6 type admin-prohibited",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


class Network:
    """The NAT of one sandbox, alive while the agent runs; `close()` ends it."""

    def __init__(self, slirp: subprocess.Popen[bytes] | None, exit_w: int | None) -> None:
        self._slirp = slirp
        self._exit_w = exit_w

    @classmethod
    def none(cls) -> Network:
        return cls(None, None)

    @classmethod
    def attach(cls, pid: int, allow: Sequence[str], deny: Sequence[str]) -> Network:
        """Give the network namespace of `pid` its NAT and rules; NetworkSetupError if not."""
        netns = f"/proc/{pid}/ns/net"
        owner = _owner_userns(netns)
        try:
            return cls._attach(netns, owner, ruleset(allow, deny))
        finally:
            if owner is not None:
                os.close(owner)

    @classmethod
    def _attach(cls, netns: str, owner: int | None, rules: str) -> Network:
        ready_r, ready_w = os.pipe()
        exit_r, exit_w = os.pipe()
        entry = [] if owner is None else [f"--userns-path=/proc/self/fd/{owner}"]
        try:
            slirp = subprocess.Popen(
                [
                    tools.path("slirp4netns"),
                    "--configure",
                    "--mtu=65520",
                    "--disable-host-loopback",
                    "--enable-seccomp",
                    "--netns-type=path",
                    *entry,
                    f"--ready-fd={ready_w}",
                    f"--exit-fd={exit_r}",
                    netns,
                    "tap0",
                ],
                pass_fds=(ready_w, exit_r, *([] if owner is None else [owner])),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            for fd in (ready_r, ready_w, exit_r, exit_w):
                os.close(fd)
            raise NetworkSetupError(f"cannot start slirp4netns: {exc}") from exc
        os.close(ready_w)
        os.close(exit_r)
        network = cls(slirp, exit_w)
        try:
            ready = _read_with_timeout(ready_r, SETUP_TIMEOUT_S)
            if ready != b"1":
                raise NetworkSetupError(f"slirp4netns did not start: {network._stderr()}")
            _load_rules(netns, owner, rules)
        except BaseException:
            network.close()
            raise
        finally:
            os.close(ready_r)
        return network

    def close(self) -> None:
        if self._exit_w is not None:
            os.close(self._exit_w)
            self._exit_w = None
        if self._slirp is not None:
            try:
                self._slirp.wait(timeout=SETUP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._slirp.kill()
                self._slirp.wait()
            if self._slirp.stderr is not None:
                self._slirp.stderr.close()
            self._slirp = None

    def _stderr(self) -> str:
        assert self._slirp is not None and self._slirp.stderr is not None
        if self._slirp.poll() is None:
            return "no answer"
        return self._slirp.stderr.read().decode("utf-8", "replace").strip() or "no message"


def _owner_userns(netns: str) -> int | None:
    """Not root: a descriptor of the user namespace that owns the agent's network namespace.
    Its owner's uid (ours) holds every capability in it, and so may configure the network;
    root needs no detour. (The agent's own user namespace is a child of that one: bwrap's
    `--disable-userns` nests one more.)"""
    if os.geteuid() == 0:
        return None
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return fcntl.ioctl(fd, _NS_GET_USERNS)
    except OSError as exc:
        raise NetworkSetupError(f"cannot find the owner of {netns}: {exc}") from exc
    finally:
        os.close(fd)


def _read_with_timeout(fd: int, timeout: float) -> bytes:
    ready, _, _ = select.select([fd], [], [], timeout)
    return os.read(fd, 1) if ready else b""


def _load_rules(netns: str, owner: int | None, rules: str) -> None:
    """nft, run in the agent's network namespace (through its owner user namespace when this
    process is not root, see `_owner_userns`)."""
    enter = [tools.path("nsenter"), f"--net={netns}"]
    if owner is not None:
        enter += [f"--user=/proc/self/fd/{owner}", "--preserve-credentials"]
    try:
        result = subprocess.run(
            [*enter, tools.path("nft"), "-f", "-"],
            input=rules.encode(),
            capture_output=True,
            timeout=SETUP_TIMEOUT_S,
            check=False,
            pass_fds=() if owner is None else (owner,),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetworkSetupError(f"cannot load the sandbox's firewall rules: {exc}") from exc
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", "replace").strip() or f"exit {result.returncode}"
        raise NetworkSetupError(f"cannot load the sandbox's firewall rules: {detail}")
