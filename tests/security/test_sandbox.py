"""Issue 14: a hostile agent, as a non-admin user's job, tries every way out, and each one is
refused; the same probe, run unconfined (`sandbox = "none"`, an admin's job), escapes by each
of them, which proves every check can see an escape."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.security.conftest import Attack, Bait, attack, world
from tests.support.server import REWIND, RewindServer, submit, wait_terminal

pytestmark = pytest.mark.xdist_group("sandbox-bait")
"""One worker runs every test that uses the bait: it adds addresses to lo and owns a socket."""
ESCAPES = (
    "read admin token",
    "list data directory",
    "read log segment",
    "write log segment",
    "create in data directory",
    "read a snapshot or secret",
    "read other workspace",
    "write other workspace",
    "read /etc/shadow",
    "write outside",
    "signal the server",
    "see the server",
    "signal another job",
    "server API on loopback",
    "server API through the gateway",
    "metadata endpoint",
    "private address",
    "host address",
    "host unix socket",
    "run as root",
)
ABILITIES = (
    "can write workspace",
    "can write home",
    "can write tmp",
    "can run git",
    "can reach allowed",
)
NOT_APPLICABLE_UNCONFINED = {"server API through the gateway"}
"""10.0.2.2 is the sandbox's NAT gateway: outside a sandbox there is nothing there to reach."""


@dataclass
class Sandboxed:
    server: RewindServer
    alice: httpx.Client
    attack: Attack


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, bait: Bait) -> Iterator[Sandboxed]:
    server, alice, bob = world(tmp_path_factory.mktemp("sandboxed"), bait)
    try:
        yield Sandboxed(server, alice, attack(server, attacker=alice, victim=bob, bait=bait))
    finally:
        server.kill()


@pytest.fixture(scope="module")
def sandboxed(served: Sandboxed) -> Attack:
    return served.attack


@pytest.fixture(scope="module")
def unconfined(tmp_path_factory: pytest.TempPathFactory, bait: Bait) -> Iterator[Attack]:
    server, _, _ = world(tmp_path_factory.mktemp("unconfined"), bait, sandbox="none")
    try:
        admin = server.client()
        yield attack(server, attacker=admin, victim=admin, bait=bait)
    finally:
        server.kill()


@pytest.mark.parametrize("escape", ESCAPES)
def test_the_sandbox_refuses(sandboxed: Attack, escape: str) -> None:
    assert sandboxed.results[escape].startswith("blocked: "), sandboxed.results[escape]


def test_nothing_of_the_agent_outlives_its_job(sandboxed: Attack) -> None:
    assert sandboxed.leftovers == []


@pytest.mark.parametrize("ability", ABILITIES)
def test_the_agent_keeps_what_it_needs(sandboxed: Attack, ability: str) -> None:
    assert sandboxed.results[ability].startswith("ok: "), sandboxed.results[ability]


@pytest.mark.parametrize("escape", [e for e in ESCAPES if e not in NOT_APPLICABLE_UNCONFINED])
def test_without_the_sandbox_the_probe_sees_each_escape(unconfined: Attack, escape: str) -> None:
    assert unconfined.results[escape].startswith("ESCAPED: "), unconfined.results[escape]


def test_without_the_sandbox_a_process_outlives_its_job(unconfined: Attack) -> None:
    assert unconfined.leftovers, "the probe's setsid process should have survived unconfined"


def test_the_sandboxs_reports_name_the_cause(sandboxed: Attack) -> None:
    """Refusals for the reasons the design gives, not by accident (a typo in a path)."""
    results = sandboxed.results
    assert "FileNotFoundError" in results["read admin token"]
    assert "PermissionError" in results["host unix socket"]
    assert "uid " in results["run as root"]
    assert "ProcessLookupError" in results["signal the server"]


def test_an_agent_without_network_reaches_nothing(served: Sandboxed, bait: Bait) -> None:
    """`network = false`: even the destination the config allows is out of reach."""
    code = (
        "import socket\n"
        f"socket.create_connection(({bait.host_ip!r}, {bait.allowed.port}), timeout=3)\n"
    )
    job = submit(served.alice, code, "demo", agent="offline")
    ended = wait_terminal(served.alice, job)
    output = served.alice.get(f"/jobs/{job}/output").text
    assert ended["status"] == "failed" and "Network is unreachable" in output, output


def test_health_and_metrics_name_the_sandbox(served: Sandboxed) -> None:
    admin = served.server.client()
    health = admin.get("/health").json()
    assert health["sandbox"] == {"mode": "bubblewrap", "agentUser": "rewind-agent"}
    assert not any("sandbox" in note for note in health["notes"])
    assert 'rewind_agent_sandbox{mode="bubblewrap"} 1' in admin.get("/metrics").text
    assert "agent sandbox: bubblewrap" in served.server.output()


def test_without_the_sandbox_health_and_the_log_warn(tmp_path: Path, bait: Bait) -> None:
    server, _, _ = world(tmp_path, bait, sandbox="none")
    try:
        health = server.client().get("/health").json()
        assert health["sandbox"]["mode"] == "none"
        assert any(note.startswith("no agent sandbox") for note in health["notes"])
        assert "WARNING: no agent sandbox" in server.output()
    finally:
        server.kill()


def test_a_server_that_cannot_build_its_sandbox_refuses_to_start(tmp_path: Path) -> None:
    """An agent account that cannot exist: the startup check fails, and says why."""
    config = tmp_path / "bad.toml"
    config.write_text('agent_user = "no such user!"\n')
    done = subprocess.run(
        [str(REWIND), "serve", "--data-dir", str(tmp_path / "data"), "--config", str(config)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    message = done.stderr.decode()
    assert done.returncode == 2, message
    assert "cannot create the agent user 'no such user!'" in message
    assert 'sandbox = "none"' in message and "Traceback" not in message
