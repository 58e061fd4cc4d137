"""A world for hostile agents: a server, a victim job, and bait on the host for every way out.

The bait: the rewind server itself (its API, its pid, its data directory), a victim job of
another user whose workspace holds a secret, TCP listeners reachable on the host's own address,
on a private address and on the cloud metadata address (both added to the loopback interface
for the test, as root), a listener the config allows, and a Unix socket anyone may connect to.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.support.server import RewindServer, git_repo, register, submit, wait_for, wait_terminal

PROBE = Path(__file__).with_name("probe.py")
BAIT_DIR = Path("/var/lib/rewind-tests")
METADATA_IP = "169.254.169.254"
PRIVATE_IP = "10.213.0.1"
AGENTS = {
    "python": {"command": ["/usr/bin/python3", "-c", "{prompt}"]},
    "shell": {"command": ["/bin/sh", "-c", "{prompt}"]},
    "offline": {"command": ["/usr/bin/python3", "-c", "{prompt}"], "network": False},
}


def host_ip() -> str:
    """An IPv4 address of this host other than loopback (the one agents' NAT goes out by)."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            ip = str(address.address)
            bait = ip.startswith("127.") or ip in (METADATA_IP, PRIVATE_IP)
            if address.family == socket.AF_INET and not bait:
                return ip
    pytest.fail("the host has no IPv4 address besides loopback")


class Listener:
    """A TCP or Unix listener that accepts and closes connections, counting them."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.accepted = 0
        sock.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()

    @classmethod
    def tcp(cls) -> Listener:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", 0))
        return cls(sock)

    @classmethod
    def unix(cls, path: Path) -> Listener:
        path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        path.chmod(0o777)
        return cls(sock)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@dataclass
class Bait:
    bait: Listener
    allowed: Listener
    unix: Listener
    host_ip: str


@pytest.fixture(scope="package")
def bait() -> Iterator[Bait]:
    if os.geteuid() != 0:
        pytest.fail("the sandbox tests run as root (as CI does): they add addresses to lo")
    BAIT_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    BAIT_DIR.chmod(0o755)
    added = []
    for address in (METADATA_IP, PRIVATE_IP):
        result = subprocess.run(
            ["ip", "addr", "add", f"{address}/32", "dev", "lo"], capture_output=True, check=False
        )
        if result.returncode == 0:
            added.append(address)  # removed at the end; one that was there already stays
        elif b"already assigned" not in result.stderr and b"File exists" not in result.stderr:
            pytest.fail(f"cannot add {address} to lo: {result.stderr.decode()}")
    listeners = Bait(
        Listener.tcp(), Listener.tcp(), Listener.unix(BAIT_DIR / "bait.sock"), host_ip()
    )
    try:
        yield listeners
    finally:
        for listener in (listeners.bait, listeners.allowed, listeners.unix):
            listener.close()
        for address in added:
            subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], check=False)


@dataclass
class Attack:
    """What one run of the probe reported, and what it left behind."""

    results: dict[str, str]
    leftovers: list[str]
    output: str


def probe_prompt(targets: dict[str, Any]) -> str:
    return f"TARGETS = {json.dumps(targets)}\n" + PROBE.read_text()


def attack(
    server: RewindServer, attacker: httpx.Client, victim: httpx.Client, bait: Bait
) -> Attack:
    """Start a victim job that keeps a secret in its workspace, run the probe as `attacker`'s
    job against it and everything else, and report."""
    data = server.data_dir
    victim_job = submit(victim, "echo s3cret > secret.txt && sleep 120", "demo", agent="shell")
    wait_for(lambda: victim.get(f"/jobs/{victim_job}/files/secret.txt").status_code == 200)
    started = wait_for(
        lambda: [
            e["event"] for e in victim.get(f"/jobs/{victim_job}/events").json()
            if e["type"] == "job.process-started"
        ]
    )  # fmt: skip
    marker = f"rewind-leftover-{uuid.uuid4().hex}"
    assert server.process is not None
    targets = {
        "admin_token": str(data / "admin-token"),
        "data_dir": str(data),
        "segment": str(sorted((data / "log").glob("*.seg"))[0]),
        "secrets_dir": str(data / "runs"),
        "other_secret": str(data / "workspaces" / victim_job / "secret.txt"),
        "system_dir": str(BAIT_DIR),
        "server_pid": server.process.pid,
        "other_pid": started[0]["pid"],
        "server_port": server.port,
        "bait_port": bait.bait.port,
        "allowed_port": bait.allowed.port,
        "private_ip": PRIVATE_IP,
        "host_ip": bait.host_ip,
        "unix_socket": str(BAIT_DIR / "bait.sock"),
        "marker": marker,
    }
    job = submit(attacker, probe_prompt(targets), "demo", agent="python")
    finished = wait_terminal(attacker, job)
    output = attacker.get(f"/jobs/{job}/output").text
    lines = [line for line in output.splitlines() if line.startswith("PROBE ")]
    assert finished["status"] == "completed" and lines, output
    time.sleep(0.5)  # a leftover would still be there; give a dying sandbox a moment
    leftovers = [
        f"{p.pid} {' '.join(p.info['cmdline'] or [])}"
        for p in psutil.process_iter(["cmdline"])
        if marker in (p.info["cmdline"] or [])
    ]
    for pid in (int(line.split()[0]) for line in leftovers):
        psutil.Process(pid).kill()
    victim.post(f"/jobs/{victim_job}/cancel")
    return Attack(json.loads(lines[-1].removeprefix("PROBE ")), leftovers, output)


def world(
    tmp: Path, bait: Bait, **settings: Any
) -> tuple[RewindServer, httpx.Client, httpx.Client]:
    """A started server with the hostile agents, a repository, and users alice and bob."""
    server = RewindServer(
        tmp / "data",
        agents=AGENTS,
        agent_network_allow=[f"{bait.host_ip}:{bait.allowed.port}"],
        **settings,
    ).start()
    admin = server.client()
    register(admin, "demo", git_repo(tmp / "src"))
    clients = []
    for name in ("alice", "bob"):
        password = f"{name}-password-1"
        assert admin.post("/users", json={"username": name, "password": password}).is_success
        token = admin.post("/auth/login", json={"username": name, "password": password})
        clients.append(server.client(token.json()["token"]))
    return server, clients[0], clients[1]
