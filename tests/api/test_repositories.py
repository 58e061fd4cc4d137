"""Repositories over the API: registration clones in the background (cloning -> ready |
failed with git's error), URLs that would make git run a program or read an option are refused
up front, credentials in a URL are never shown back, settings change, an unused repository is
unregistered and its clone removed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import assert_problem, fingerprint
from tests.support.server import RewindServer, git_repo, register, submit, wait_for, wait_terminal


@dataclass
class Served:
    server: RewindServer
    admin: httpx.Client
    user: httpx.Client
    tmp: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("repos")
    server = RewindServer(tmp / "data").start()
    try:
        admin = server.client()
        credentials = {"username": "uma", "password": "uma-pw-123"}
        assert admin.post("/users", json=credentials).status_code == 201
        token = admin.post("/auth/login", json=credentials).json()["token"]
        yield Served(server, admin, server.client(token), tmp)
    finally:
        server.kill()


def test_registration_clones_in_the_background(served: Served) -> None:
    source = git_repo(served.tmp / "src")
    answer = served.admin.post("/repositories", json={"name": "demo", "gitUrl": f"file://{source}"})
    assert answer.status_code == 202
    assert answer.json()["cloneStatus"] == "cloning" and answer.json()["lockedBy"] == "demo"
    ready = register_wait(served, "demo")
    assert ready["commit"] and len(ready["commit"]) == 40 and ready["lockedBy"] is None
    assert (served.server.data_dir / "repos" / "demo" / "README.md").exists()
    assert "demo" in {r["name"] for r in served.user.get("/repositories").json()}


def register_wait(served: Served, name: str) -> dict[str, Any]:
    return wait_for(  # type: ignore[no-any-return]
        lambda: (
            (r := served.admin.get(f"/repositories/{name}").json())["cloneStatus"] != "cloning"
            and r
        )
    )


@pytest.mark.parametrize(
    ("url", "branch"),
    [
        ("ext::sh -c touch% /tmp/rewind-pwned", "main"),
        ("--upload-pack=touch /tmp/rewind-pwned", "main"),
        ("fd::17", "main"),
        ("http://example.com/x.git", "main"),
        ("git://example.com/x.git", "main"),
        ("file://elsewhere/x.git", "main"),
        (" /tmp/x", "main"),
        ("", "main"),
        ("/tmp/x", "--orphan"),
        ("/tmp/x", "main..x"),
        ("/tmp/x", "a b"),
    ],
)
def test_dangerous_urls_and_branches_are_422(served: Served, url: str, branch: str) -> None:
    before = (fingerprint(served.admin), served.admin.get("/repositories").json())
    answer = served.admin.post(
        "/repositories", json={"name": "evil", "gitUrl": url, "branch": branch}
    )
    assert_problem(answer, 422)
    assert (fingerprint(served.admin), served.admin.get("/repositories").json()) == before
    assert not Path("/tmp/rewind-pwned").exists()


def test_a_failed_clone_says_why_and_fails_its_jobs(served: Served) -> None:
    missing = served.tmp / "no-such-repo"
    answer = served.admin.post("/repositories", json={"name": "gone", "gitUrl": str(missing)})
    assert answer.status_code == 202
    failed = register_wait(served, "gone")
    assert failed["cloneStatus"] == "failed" and failed["lockedBy"] is None
    assert "no-such-repo" in str(failed["cloneError"])
    job = wait_terminal(served.admin, submit(served.admin, "--print x", "gone"))
    assert job["status"] == "failed" and "gone" in job["error"], job


@pytest.mark.parametrize(
    ("name", "url", "shown"),
    [
        ("basic", "https://bob:{secret}@127.0.0.1:9/p.git", "https://bob:***@127.0.0.1:9/p.git"),
        ("token", "https://{secret}@127.0.0.1:9/p.git", "https://***@127.0.0.1:9/p.git"),
    ],
)
def test_credentials_in_a_url_are_never_shown(
    served: Served, name: str, url: str, shown: str
) -> None:
    secret = "hunter2-s3cret"
    body = {"name": name, "gitUrl": url.format(secret=secret)}
    answer = served.admin.post("/repositories", json=body)
    assert answer.status_code == 202 and secret not in answer.text
    failed = register_wait(served, name)
    assert failed["cloneStatus"] == "failed" and secret not in str(failed["cloneError"])
    for client in (served.admin, served.user):
        for path in ("/repositories", f"/repositories/{name}"):
            seen = client.get(path)
            assert seen.status_code == 200 and secret not in seen.text, seen.text
    assert served.admin.get(f"/repositories/{name}").json()["gitUrl"] == shown


def test_settings_change_and_an_unused_repository_is_unregistered(served: Served) -> None:
    admin = served.admin
    register(admin, "temp", git_repo(served.tmp / "temp"))
    settings = {"indexCommand": ["true"], "defaultAgent": "fake", "env": {"A": "1"}}
    changed = admin.put("/repositories/temp/settings", json=settings)
    shown = {"indexCommand": ["true"], "defaultAgent": "fake", "envNames": ["A"]}
    assert changed.status_code == 200 and changed.json()["settings"] == shown
    assert admin.get("/repositories/temp").json()["settings"] == shown
    # the default agent is the repository's: no agent named in the job
    job = admin.post("/jobs", json={"prompt": "--print default", "repository": "temp"}).json()
    assert admin.post(f"/jobs/{job['id']}/start").status_code == 200
    assert wait_terminal(admin, job["id"])["agent"] == "fake"
    assert admin.delete("/repositories/temp").status_code == 204
    assert_problem(admin.get("/repositories/temp"), 404)
    wait_for(lambda: not (served.server.data_dir / "repos" / "temp").exists())
    assert_problem(
        admin.post("/jobs", json={"prompt": "x", "repository": "temp", "agent": "fake"}), 404
    )
