"""Secrets stay secret, through the real server: a repository's git credentials reach git (a
real clone and pull from an HTTPS remote that demands basic auth) and nothing else; its
variables' values reach its index command and its agents, and no caller sees them; and no
output of the operator's tools or the admin API shows a password or token hash.

"Nothing else" is checked where a leak would land: the raw bytes of the log and of the
snapshots, every process's command line while git talks to the remote, the clone's and the
workspace's `.git/config`, the API's answers to an admin and to a user, and the outputs of
`rewind log dump`, `rewind state`, `rewind history` and `rewind crashes`.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from service.repo_secrets import RepoSecret
from service.secrets_store import SecretsStore
from tests.api.helpers import assert_problem, state_at
from tests.service.helpers import run_rewind
from tests.support.git_https import GitHttps, certificate, publish, serving
from tests.support.server import RewindServer, git_repo, register, submit, wait_for, wait_terminal

GIT_PASSWORD = "s3cret-git-pw-0fa1"
API_KEY = "sk-live-9c1d2e3f4a5b6c7d"
INDEX = ["sh", "-c", f'test "${{#API_KEY}}" -eq {len(API_KEY)}']
"""The index command checks that it got the value, without naming it (argv is logged)."""


@dataclass
class World:
    server: RewindServer
    admin: httpx.Client
    user: httpx.Client
    git: GitHttps
    tmp: Path

    @property
    def data(self) -> Path:
        return self.server.data_dir


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("secrets")
    www = tmp / "www"
    www.mkdir()
    publish(git_repo(tmp / "src"), www, "app")
    cert, key = certificate(tmp)
    with serving(www, cert, key, "bob", GIT_PASSWORD) as git:
        server = RewindServer(tmp / "data", env={"GIT_SSL_CAINFO": str(cert)}, snapshot_every=20)
        server.start()
        try:
            admin = server.client()
            credentials = {"username": "uma", "password": "uma-pw-123"}
            assert admin.post("/users", json=credentials).status_code == 201
            token = admin.post("/auth/login", json=credentials).json()["token"]
            register(admin, "local", git_repo(tmp / "local"))
            yield World(server, admin, server.client(token), git, tmp)
        finally:
            server.kill()


def stored_bytes(data: Path) -> bytes:
    """Every byte of the log's segments and of the snapshots, as they lie on disk."""
    files = sorted([*(data / "log").glob("*.seg"), *(data / "snapshots").glob("*")])
    assert files, "a log to read"
    return b"".join(path.read_bytes() for path in files)


QUICK = ("log dump --json", "state --json")
"""The outputs that print everything (every event, the whole state); the others print the
same values in other shapes, and are checked once per secret's kind."""


def outputs(
    data: Path, job_id: str, *extra: str, only: tuple[str, ...] | None = None
) -> dict[str, str]:
    """What the operator's read-only tools print about the data directory (`extra` options
    added where they are understood)."""
    commands: dict[str, list[str | Path]] = {
        "log dump": ["log", "dump", data, *extra],
        "log dump --json": ["log", "dump", data, "--json", *extra],
        "state": ["state", data, *extra],
        "state --json": ["state", data, "--json", *extra],
        "history job": ["history", "job", data, job_id, *extra],
        "history job --json": ["history", "job", data, job_id, "--json", *extra],
        "crashes --json": ["crashes", data, "--json"],
    }
    printed = {}
    for name, argv in commands.items():
        if only is not None and name not in only:
            continue
        result = run_rewind(*argv)
        assert result.returncode == 0, (name, result.stderr)
        printed[name] = result.stdout + result.stderr
    return printed


def assert_nowhere(
    world: World, job_id: str, *secrets: str, only: tuple[str, ...] | None = QUICK
) -> None:
    stored = stored_bytes(world.data)
    printed = outputs(world.data, job_id, only=only)
    for secret in secrets:
        assert secret.encode() not in stored, f"{secret!r} is in the log or a snapshot"
        for name, text in printed.items():
            assert secret not in text, f"`rewind {name}` shows {secret!r}"
        for client in (world.admin, world.user):
            for path in ("/repositories", "/jobs?limit=500", f"/jobs/{job_id}/events"):
                assert secret not in client.get(path).text, (path, secret)
        assert secret not in world.server.output(), f"the server's log shows {secret!r}"


def test_git_credentials_reach_git_and_nothing_else(world: World) -> None:
    url = world.git.url("app", f"bob:{GIT_PASSWORD}")
    settings = {"indexCommand": INDEX, "env": {"API_KEY": API_KEY}}
    register(world.admin, "private", url, settings=settings)
    assert world.git.authorized, "the clone authenticated"
    cloned = len(world.git.authorized)

    job_id = submit(world.admin, "--echo-env API_KEY", "private")  # pulls, indexes, runs
    job = wait_terminal(world.admin, job_id)
    assert job["status"] == "completed", job
    assert len(world.git.authorized) > cloned, "the pull authenticated"
    assert not [r for r in world.git.requests if r.password_in_argv], "a command line held it"
    assert API_KEY in world.admin.get(f"/jobs/{job_id}/output").text, "the agent got the value"
    for config in (
        world.data / "repos" / "private" / ".git" / "config",
        world.data / "workspaces" / job_id / ".git" / "config",
    ):
        assert GIT_PASSWORD not in config.read_text(), config

    shown = world.user.get("/repositories/private").json()
    assert shown["gitUrl"] == world.git.url("app", "bob:***")
    assert shown["settings"] == {
        "indexCommand": INDEX,
        "defaultAgent": None,
        "envNames": ["API_KEY"],
    }
    assert world.admin.get("/repositories/private").json() == shown
    assert_nowhere(world, job_id, GIT_PASSWORD, API_KEY, only=None)

    secret = world.data / "secrets" / "repo" / "private"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert repo_secret(world, "private") == RepoSecret(
        credentials=f"bob:{GIT_PASSWORD}", env={"API_KEY": API_KEY}
    )


def repo_secret(world: World, name: str) -> RepoSecret | None:
    stored = SecretsStore(world.data / "secrets").kind("repo").get(name)
    return None if stored is None else msgspec.json.decode(stored, type=RepoSecret)


def test_a_wrong_password_fails_the_clone_and_is_shown_nowhere(world: World) -> None:
    wrong = "wr0ng-pw-77aa"
    answer = world.admin.post(
        "/repositories", json={"name": "denied", "gitUrl": world.git.url("app", f"bob:{wrong}")}
    )
    assert answer.status_code == 202 and wrong not in answer.text
    failed = wait_for(
        lambda: (
            (r := world.admin.get("/repositories/denied").json())["cloneStatus"] == "failed" and r
        )
    )
    assert "127.0.0.1" in failed["cloneError"] and wrong not in failed["cloneError"]
    job_id = submit(world.admin, "--print x", "denied")
    assert wait_terminal(world.admin, job_id)["status"] == "failed"
    assert_nowhere(world, job_id, wrong)


def test_a_refused_registration_leaves_the_registered_secrets_alone(world: World) -> None:
    register(world.admin, "kept", world.git.url("app", f"bob:{GIT_PASSWORD}"))
    again = {"name": "kept", "gitUrl": world.git.url("app", "eve:other-pw"), "settings": {}}
    assert_problem(world.admin.post("/repositories", json=again), 409)
    assert repo_secret(world, "kept") == RepoSecret(credentials=f"bob:{GIT_PASSWORD}")
    assert_problem(world.admin.put("/repositories/nope/settings", json={"env": {"A": "1"}}), 404)
    assert repo_secret(world, "nope") is None


def test_settings_keep_values_in_the_store_and_unregistering_removes_them(world: World) -> None:
    admin = world.admin
    register(admin, "temp", git_repo(world.tmp / "temp"), settings={"env": {"OLD": "old-v4lue"}})
    assert repo_secret(world, "temp") == RepoSecret(env={"OLD": "old-v4lue"})
    changed = admin.put("/repositories/temp/settings", json={"env": {"NEW": "new-v4lue"}})
    assert changed.status_code == 200 and changed.json()["settings"]["envNames"] == ["NEW"]
    assert repo_secret(world, "temp") == RepoSecret(env={"NEW": "new-v4lue"})
    bad = admin.put("/repositories/temp/settings", json={"env": {"A=B": "x"}})
    assert_problem(bad, 422)
    assert repo_secret(world, "temp") == RepoSecret(env={"NEW": "new-v4lue"}), "restored"
    job_id = submit(admin, "--echo-env NEW", "temp")
    assert wait_terminal(admin, job_id)["status"] == "completed"
    assert '"NEW": "new-v4lue"' in admin.get(f"/jobs/{job_id}/output").text
    assert admin.delete("/repositories/temp").status_code == 204
    assert repo_secret(world, "temp") is None
    assert_nowhere(world, job_id, "old-v4lue", "new-v4lue")


def hashes(world: World) -> list[str]:
    """Every password and token hash the log holds, read with the project's own replay."""
    users = state_at(world.data).users
    passwords = [u.password_hash for u in users.by_id.values() if u.password_hash is not None]
    assert passwords and len(users.tokens) >= 2, "uma's scrypt hash, the admin's and uma's tokens"
    return passwords + list(users.tokens)


def test_no_output_shows_a_password_or_token_hash_unless_asked(world: World) -> None:
    job_id = submit(world.admin, "--print x", "local")
    wait_terminal(world.admin, job_id)
    known = hashes(world)
    printed = outputs(world.data, job_id)
    admin_api: dict[str, Any] = {"/api/admin/recovery": world.admin.get("/api/admin/recovery")}
    for value in known:
        for name, text in printed.items():
            assert value not in text, f"`rewind {name}` shows a hash"
        assert value not in admin_api["/api/admin/recovery"].text
        assert value not in world.server.output(), "the server's log shows a hash"
    shown = outputs(world.data, job_id, "--show-secrets", only=QUICK)
    for name in QUICK:
        assert all(value in shown[name] for value in known), f"`rewind {name} --show-secrets`"
