"""Issue 14: a hostile agent, as a non-admin user's job, tries every way out, and each one is
refused; the same probe, run unconfined (`sandbox = "none"`, an admin's job), escapes by each
of them, which proves every check can see an escape."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.security.conftest import Attack, Bait, attack, world

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


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory: pytest.TempPathFactory, bait: Bait) -> Iterator[Attack]:
    server, alice, bob = world(tmp_path_factory.mktemp("sandboxed"), bait)
    try:
        yield attack(server, attacker=alice, victim=bob, bait=bait)
    finally:
        server.kill()


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
