"""Issue 14 against the real server: a config's ``job_env_allow`` bounds a job's environment
(422 naming the variable), and with ``sandbox = "none"`` only admins create jobs (403)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.api.helpers import assert_problem, fingerprint
from tests.support.server import RewindServer, git_repo, register, submit, wait_terminal


@dataclass
class World:
    server: RewindServer
    admin: httpx.Client
    alice: httpx.Client


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("policy")
    server = RewindServer(tmp / "data", sandbox="none", job_env_allow=["APP_*"]).start()
    try:
        admin = server.client()
        register(admin, "demo", git_repo(tmp / "src"))
        assert admin.post("/users", json={"username": "alice", "password": "alice-pw-1"}).is_success
        token = admin.post("/auth/login", json={"username": "alice", "password": "alice-pw-1"})
        yield World(server, admin, server.client(token.json()["token"]))
    finally:
        server.kill()


def _refused(world: World, client: httpx.Client, status: int, body: dict[str, object]) -> str:
    """POST /jobs is refused with ``status`` and changes nothing; the problem's detail."""
    before = fingerprint(world.admin)
    problem = assert_problem(client.post("/jobs", json=body), status)
    assert fingerprint(world.admin) == before
    detail: str = problem["detail"]
    return f"{problem['code']}: {detail}"


def _job(**options: object) -> dict[str, object]:
    return {"prompt": "--print x", "repository": "demo", "agent": "fake", "options": options}


def test_without_a_sandbox_a_users_job_is_403(world: World) -> None:
    answer = _refused(world, world.alice, 403, _job())
    assert answer.startswith("sandbox_required: ") and 'sandbox = "none"' in answer


def test_a_variable_outside_the_allowlist_is_422_naming_it(world: World) -> None:
    answer = _refused(world, world.admin, 422, _job(env={"APP_MODE": "ci", "DEBUG": "1"}))
    assert answer.startswith("env_not_allowed: ") and "'DEBUG'" in answer and "APP_*" in answer


def test_the_allowlist_cannot_let_a_denied_variable_through(world: World) -> None:
    answer = _refused(world, world.admin, 422, _job(env={"APP_MODE": "ci", "LD_PRELOAD": "x"}))
    assert answer.startswith("env_denied: ") and "'LD_PRELOAD'" in answer


def test_an_allowed_variable_reaches_an_admins_agent(world: World) -> None:
    job_id = submit(world.admin, "--echo-env APP_MODE", "demo", options={"env": {"APP_MODE": "ci"}})
    assert wait_terminal(world.admin, job_id)["status"] == "completed"
    output = world.admin.get(f"/jobs/{job_id}/output").text
    assert json.loads(output) == {"env": {"APP_MODE": "ci"}}
