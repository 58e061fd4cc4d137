"""Every refusal of the API, against the real server: the status, an RFC 9457 problem body,
and nothing changed (the log's newest seq, the jobs and their staged files are as before).

One server serves the whole module: every request here is refused, so none disturbs the next.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.helpers import (
    assert_problem,
    fingerprint,
    multipart,
    multipart_headers,
)
from tests.support.server import RewindServer, git_repo, register, submit, wait_for, wait_terminal

UPLOAD_LIMIT = 1000
SECRET = "SECRET OUTSIDE THE WORKSPACE\n"


@dataclass
class World:
    server: RewindServer
    admin: httpx.Client
    alice: httpx.Client
    anonymous: httpx.Client
    ids: dict[str, str]
    """created: admin's job never started; done: admin's completed job; mine: alice's job."""
    secret: Path

    def url(self, template: str) -> str:
        return template.format(**self.ids)


def _commit_symlink(repo: Path, name: str, target: Path) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "GIT_CONFIG_GLOBAL": "/dev/null",
    }
    (repo / name).symlink_to(target)
    for argv in (["add", name], ["commit", "-q", "-m", "symlink out"]):
        subprocess.run(["git", *argv], cwd=repo, env=env, check=True)


def _quiet(admin: httpx.Client) -> None:
    """Until the server appends nothing more on its own (a finished job's follow-ups)."""
    seen: list[int] = []

    def settled() -> bool:
        seen.append(admin.get("/health").json()["log"]["lastSeq"])
        return len(seen) >= 3 and seen[-1] == seen[-3]

    wait_for(settled, interval=0.3)


def _make_strange_entries(directory: Path) -> None:
    """Symlink loops (one link, and two pointing at each other), a Unix socket, a FIFO."""
    (directory / "loop").symlink_to("loop")
    (directory / "ping").symlink_to("pong")
    (directory / "pong").symlink_to("ping")
    os.mkfifo(directory / "fifo")
    with socket.socket(socket.AF_UNIX) as listener:  # bound somewhere short, then moved
        bound = Path(tempfile.mkdtemp()) / "sock"
        listener.bind(str(bound))
        bound.rename(directory / "sock")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("errors")
    secret = tmp / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text(SECRET)
    server = RewindServer(tmp / "data", upload_max_bytes=UPLOAD_LIMIT).start()
    try:
        admin = server.client()
        source = git_repo(tmp / "src", {"README.md": "# demo\n"})
        _commit_symlink(source, "escape", secret)
        register(admin, "demo", source)
        register(admin, "spare", git_repo(tmp / "spare"))
        assert admin.post("/users", json={"username": "alice", "password": "alice-pw-1"}).is_success
        assert admin.post("/users", json={"username": "bob", "password": "bob-pw-12"}).is_success
        token = admin.post("/auth/login", json={"username": "alice", "password": "alice-pw-1"})
        alice = server.client(token.json()["token"])
        ids = {
            "created": submit(admin, "--print never", "demo", start=False),
            "done": submit(admin, "--write out.txt=done --write sub/inner.txt=x", "demo"),
            "mine": submit(alice, "--print alice", "demo", start=False),
        }
        assert wait_terminal(admin, ids["done"])["status"] == "completed"
        workspace = server.data_dir / admin.get(f"/jobs/{ids['done']}").json()["workspace"]
        # what an agent can do in its workspace: a symlink out of it, links that lead
        # nowhere, files that are no files
        (workspace / "sub" / "up").symlink_to(secret.parent)
        _make_strange_entries(workspace / "sub")
        _quiet(admin)
        yield World(server, admin, alice, httpx.Client(base_url=server.base_url), ids, secret)
    finally:
        server.kill()


def refused(
    world: World, client: httpx.Client, method: str, url: str, status: int, **kw: Any
) -> dict[str, Any]:
    """`method url` is refused with `status` as a problem, and changes nothing."""
    before = fingerprint(world.admin)
    body = assert_problem(client.request(method, world.url(url), **kw), status)
    assert fingerprint(world.admin) == before, f"{method} {url} changed something"
    return body


JOB_ENDPOINTS = [
    ("GET", "/jobs/{job}"),
    ("POST", "/jobs/{job}/start"),
    ("POST", "/jobs/{job}/cancel"),
    ("DELETE", "/jobs/{job}"),
    ("GET", "/jobs/{job}/output"),
    ("GET", "/jobs/{job}/output?follow=1"),
    ("GET", "/jobs/{job}/files"),
    ("GET", "/jobs/{job}/files/out.txt"),
    ("GET", "/jobs/{job}/events"),
    ("GET", "/jobs/{job}/callbacks"),
    ("POST", "/jobs/{job}/callbacks/0/retry"),
]


@pytest.mark.parametrize(("method", "template"), JOB_ENDPOINTS)
def test_unknown_job_is_404(world: World, method: str, template: str) -> None:
    url = template.replace("{job}", "job-0123456789abcdef")
    assert refused(world, world.admin, method, url, 404)["code"] == "job_not_found"


@pytest.mark.parametrize(("method", "template"), [*JOB_ENDPOINTS, ("POST", "/jobs/{job}/files")])
def test_another_users_job_is_404_like_an_unknown_one(
    world: World, method: str, template: str
) -> None:
    """Not 403: a user cannot even learn that another user's job id exists."""
    kw: dict[str, Any] = {}
    if template.endswith("/files") and method == "POST":
        kw = {"files": {"file": ("a.txt", b"a")}}
    for job in ("{done}", "{created}"):
        url = template.replace("{job}", job)
        foreign = refused(world, world.alice, method, url, 404, **kw)
        unknown = refused(world, world.alice, method, template.replace("{job}", "job-x"), 404, **kw)
        assert foreign["code"] == unknown["code"] == "job_not_found"
        assert foreign["title"] == unknown["title"]


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/repositories/nope"),
        ("PUT", "/repositories/nope/settings"),
        ("DELETE", "/repositories/nope"),
    ],
)
def test_unknown_repository_is_404(world: World, method: str, url: str) -> None:
    kw: dict[str, Any] = {"json": {"indexCommand": []}} if method == "PUT" else {}
    assert refused(world, world.admin, method, url, 404, **kw)["code"] == "repo_not_found"


def test_a_job_on_an_unknown_repository_is_404(world: World) -> None:
    body = {"prompt": "--print x", "repository": "nope", "agent": "fake"}
    refused(world, world.admin, "POST", "/jobs", 404, json=body)


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/jobs"),
        ("POST", "/jobs"),
        ("GET", "/jobs/{done}"),
        ("GET", "/jobs/{done}/output"),
        ("POST", "/jobs/{created}/start"),
        ("GET", "/repositories"),
        ("POST", "/repositories"),
        ("POST", "/users"),
        ("GET", "/stats"),
        ("GET", "/api/admin/recovery"),
    ],
)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer rw_not-a-token", "Basic YWRtaW46YWRtaW4=", "Bearer"]
)
def test_missing_or_invalid_token_is_401(
    world: World, method: str, url: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    kw: dict[str, Any] = {"headers": headers}
    if method == "POST":
        kw["json"] = {"prompt": "--print x", "repository": "demo", "agent": "fake"}
    answer = world.anonymous.request(method, world.url(url), **kw)
    assert_problem(answer, 401)
    assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("POST", "/users", {"username": "mallory", "password": "mallory-pw"}),
        ("DELETE", "/users/bob", None),
        ("POST", "/repositories", {"name": "mine", "gitUrl": "/tmp"}),
        ("PUT", "/repositories/spare/settings", {"indexCommand": ["true"]}),
        ("DELETE", "/repositories/spare", None),
        ("GET", "/api/admin/recovery", None),
    ],
)
def test_a_user_on_admin_endpoints_is_403(
    world: World, method: str, url: str, body: dict[str, Any] | None
) -> None:
    kw = {} if body is None else {"json": body}
    assert refused(world, world.alice, method, url, 403, **kw)["code"] == "forbidden"


@pytest.mark.parametrize(
    "url", ["/jobs", "/repositories", "/users", "/auth/login", "/repositories/spare/settings"]
)
@pytest.mark.parametrize("text", [b"{bad", b'{"prompt": "x",}', b"\xff\xfe", b"[1, 2"])
def test_malformed_json_is_400(world: World, url: str, text: bytes) -> None:
    method = "PUT" if url.endswith("/settings") else "POST"
    headers = {"content-type": "application/json"}
    refused(world, world.admin, method, url, 400, content=text, headers=headers)


DEEP = {
    "arrays": b"[" * 1000 + b"]" * 1000,
    "objects": b'{"a":' * 1000 + b"1" + b"}" * 1000,
    "in a field": b'{"username": "alice", "password": ' + b"[" * 1000 + b"]" * 1000 + b"}",
}


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", "/auth/login"),
        ("POST", "/jobs"),
        ("POST", "/users"),
        ("POST", "/repositories"),
        ("PUT", "/repositories/spare/settings"),
    ],
)
@pytest.mark.parametrize("text", DEEP.values(), ids=DEEP.keys())
def test_json_nested_a_thousand_deep_is_400_without_a_traceback(
    world: World, method: str, url: str, text: bytes
) -> None:
    """Issue 14: 2 KB of brackets made the decoder raise RecursionError, a 500 with a
    traceback in the server's log, on the unauthenticated login too."""
    logged = len(world.server.output())
    client = world.anonymous if url == "/auth/login" else world.admin
    headers = {"content-type": "application/json"}
    body = refused(world, client, method, url, 400, content=text, headers=headers)
    assert body["code"] == "too_deeply_nested", body
    assert "Traceback" not in world.server.output()[logged:]


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": 3, "repository": "demo"},
        {"prompt": "--print x"},
        {"prompt": "--print x", "repository": ["demo"]},
        {"prompt": "--print x", "repository": "demo", "bogus": 1},
        {"prompt": "--print x", "repository": "demo", "options": {"timeoutSecond": 5}},
        {"prompt": "--print x", "repository": "demo", "options": {"gitPull": "yes"}},
        {"prompt": "--print x", "repository": "demo", "options": {"env": {"A": 1}}},
        {"prompt": "--print x", "repository": "demo", "callbacks": {"url": "http://x"}},
        {"prompt": "--print x", "repository": "demo", "callbacks": [{"url": "http://x", "k": 1}]},
        [{"prompt": "--print x", "repository": "demo"}],
        "just a string",
    ],
)
def test_wrong_types_and_unknown_fields_are_422(world: World, body: Any) -> None:
    refused(world, world.admin, "POST", "/jobs", 422, json=body)


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/repositories", {"name": "x", "gitUrl": 5}),
        ("/repositories", {"name": "x", "gitUrl": "/tmp", "branchh": "main"}),
        ("/users", {"username": "carol"}),
        ("/users", {"username": "carol", "password": "carol-pw-1", "admin": True}),
        ("/auth/login", {"username": "alice"}),
    ],
)
def test_other_bodies_of_the_wrong_shape_are_422(world: World, url: str, body: Any) -> None:
    refused(world, world.admin, "POST", url, 422, json=body)


@pytest.mark.parametrize(
    "url",
    [
        "/jobs?limit=0",
        "/jobs?limit=501",
        "/jobs?limit=ten",
        "/jobs?cursor=abc",
        "/jobs/{done}/output?offset=-1",
        "/jobs/{done}/output?offset=abc",
        "/jobs/{done}/output?follow=maybe",
    ],
)
def test_bad_query_parameters_are_422(world: World, url: str) -> None:
    refused(world, world.admin, "GET", url, 422)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/hook", "file:///etc/passwd", "javascript:alert(1)", "example.com"]
)
def test_a_callback_url_that_is_not_http_is_422(world: World, url: str) -> None:
    body = {
        "prompt": "--print x",
        "repository": "demo",
        "agent": "fake",
        "callbacks": [{"url": url}],
    }
    secrets = world.server.data_dir / "secrets"
    kept = sorted(secrets.iterdir()) if secrets.exists() else []
    refused(world, world.admin, "POST", "/jobs", 422, json=body)
    assert (sorted(secrets.iterdir()) if secrets.exists() else []) == kept, "a secret was kept"


@pytest.mark.parametrize("name", ["LD_PRELOAD", "PYTHONPATH", "https_proxy", "REWIND_JOB_ID"])
def test_a_denied_environment_variable_is_422_naming_it(world: World, name: str) -> None:
    """Issue 14: a job's environment never sets a loader, an interpreter hook, a proxy or
    the server's own variables, whoever asks (the default config allows every other name)."""
    job = {"prompt": "--print x", "repository": "demo", "agent": "fake"}
    for client in (world.alice, world.admin):
        body = {**job, "options": {"env": {"APP_MODE": "ci", name: "x"}}}
        problem = refused(world, client, "POST", "/jobs", 422, json=body)
        assert problem["code"] == "env_denied" and repr(name) in problem["detail"], problem


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.text(
        alphabet=st.sampled_from(
            ["a", ".", "/", "\\", "\x00", " ", "é", "\u0301", "~", "\u202e", "\t"]
        ),
        max_size=12,
    )
)
def test_no_upload_name_writes_outside_its_staging_directory(world: World, name: str) -> None:
    """Whatever the name: refused with nothing written, or one file directly in the job's
    staging directory under its normalized name, and nothing else anywhere changed."""
    outside = world.server.data_dir.parent
    before = _tree(outside)
    answer = world.admin.post(
        world.url("/jobs/{created}/files"),
        content=multipart([(name.encode(), b"x")]),
        headers=multipart_headers(),
    )
    after = _tree(outside)
    if answer.status_code == 201:
        (stored,) = answer.json()
        # the multipart parser shortens a Windows path (C:\\x\\a) to its last part, as IE sent it
        assert stored["name"] not in (".", "..") and "/" not in stored["name"], stored
        assert unicodedata.normalize("NFC", name).strip().endswith(stored["name"])
        directory = f"data/staging/{world.ids['created']}"
        place = f"{directory}/{stored['name']}"
        assert after - before <= {place, directory, "data/staging"}, after - before
        assert (outside / place).read_bytes() == b"x"
    else:
        assert_problem(answer, 422)
        assert after == before


def _staged(world: World, job: str) -> list[str]:
    directory = world.server.data_dir / "staging" / world.ids[job]
    return sorted(os.listdir(directory)) if directory.exists() else []


@pytest.mark.parametrize(
    "filename",
    [
        b"../x",
        b"../../etc/passwd",
        b"/etc/passwd",
        b"/abs",
        b"a\x00b",
        b".",
        b"..",
        b"a/b",
        b"a\\..\\b",
        b"  ",
    ],
)
def test_traversal_names_in_uploads_are_422_and_stage_nothing(
    world: World, filename: bytes
) -> None:
    before = _staged(world, "created")
    content = multipart([(filename, b"data")])
    for parts in ([(filename, b"data")], [(b"fine.txt", b"ok"), (filename, b"data")]):
        content = multipart(parts)
        body = refused(
            world,
            world.admin,
            "POST",
            "/jobs/{created}/files",
            422,
            content=content,
            headers=multipart_headers(),
        )
        assert body["code"] == "bad_filename", body
        assert _staged(world, "created") == before, "a refused upload staged a file"


def test_an_upload_over_the_limit_is_413_and_stages_nothing(world: World) -> None:
    before = _staged(world, "created")
    for parts in (
        [(b"big.bin", b"x" * (UPLOAD_LIMIT + 1))],
        [(b"small.txt", b"ok"), (b"big.bin", b"x" * (UPLOAD_LIMIT + 1))],
        [(b"huge.bin", b"x" * (UPLOAD_LIMIT + 2**21))],  # over the request body limit too
    ):
        refused(
            world,
            world.admin,
            "POST",
            "/jobs/{created}/files",
            413,
            content=multipart(parts),
            headers=multipart_headers(),
        )
        assert _staged(world, "created") == before


def test_an_upload_without_file_parts_is_refused(world: World) -> None:
    refused(world, world.admin, "POST", "/jobs/{created}/files", 415, json={"file": "x"})
    refused(
        world,
        world.admin,
        "POST",
        "/jobs/{created}/files",
        422,
        files={"other": ("a.txt", b"a")},
    )


def test_files_of_a_finished_job_are_refused_after_it_started(world: World) -> None:
    refused(world, world.admin, "POST", "/jobs/{done}/files", 409, files={"file": ("a.txt", b"a")})


@pytest.mark.parametrize(
    "path",
    [
        "%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "sub/%2e%2e/%2e%2e/outside",
        "%2E%2E%2F%2E%2E%2Foutside%2Fsecret.txt",
        "%2Fetc%2Fpasswd",
        "escape",
        "sub/up/secret.txt",
        "sub/up",
        "a%00b",
    ],
)
def test_browsing_outside_the_workspace_is_refused(world: World, path: str) -> None:
    """Encoded `..`, absolute paths, NUL, a symlink committed in the repository and one the
    agent made: none reads or lists anything outside the workspace."""
    before = fingerprint(world.admin)
    answer = world.admin.get(world.url("/jobs/{done}/files/") + path)
    assert answer.status_code in (404, 422), (path, answer.status_code, answer.text)
    assert_problem(answer, answer.status_code)
    assert "SECRET" not in answer.text and "root:" not in answer.text
    assert fingerprint(world.admin) == before


LONG = "a" * 300


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        (LONG, 422, "path_too_long"),
        (f"sub/{LONG}/x", 422, "path_too_long"),
        ("sub/loop", 404, "file_not_found"),
        ("sub/loop/x", 404, "file_not_found"),
        ("sub/ping", 404, "file_not_found"),
        ("sub/sock", 422, "not_a_regular_file"),
        ("sub/fifo", 422, "not_a_regular_file"),
        ("sub/sock/x", 404, "file_not_found"),
    ],
)
def test_names_that_cannot_be_read_are_refused_not_a_500(
    world: World, path: str, status: int, code: str
) -> None:
    """Issue 14: a name over NAME_MAX (ENAMETOOLONG), a symlink loop (ELOOP) and a socket
    (ENXIO) were 500s. A name too long is the client's mistake (422); a loop leads to no file,
    like a dangling link (404); a socket or FIFO exists but has no bytes to send (422)."""
    body = refused(world, world.admin, "GET", "/jobs/{done}/files/" + path, status)
    assert body["code"] == code, body


def test_browsing_inside_the_workspace_still_works(world: World) -> None:
    """The refusals above are not a server that refuses everything."""
    listing = world.admin.get(world.url("/jobs/{done}/files/sub")).json()
    assert {"name": "up", "type": "symlink", "size": 0} in listing
    assert {"name": "loop", "type": "symlink", "size": 0} in listing
    assert {"name": "sock", "type": "other", "size": 0} in listing
    assert world.admin.get(world.url("/jobs/{done}/files/sub/inner.txt")).text == "x"


def test_idempotent_replay_and_conflict(world: World) -> None:
    admin = world.admin
    body = {"prompt": "--print once", "repository": "spare", "agent": "fake"}
    key = {"Idempotency-Key": "tour-42"}
    first = admin.post("/jobs", json=body, headers=key)
    assert first.status_code == 201, first.text
    before = fingerprint(admin)
    again = admin.post("/jobs", json=body, headers=key)
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert fingerprint(admin) == before, "a replay made a second job"
    other = refused(
        world, admin, "POST", "/jobs", 422, json={**body, "prompt": "--print 2"}, headers=key
    )
    assert other["code"] == "idempotency_conflict"
    # the key is the caller's: another user's same key makes that user's own job
    theirs = world.alice.post("/jobs", json=body, headers=key)
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]
    for job in (first.json()["id"], theirs.json()["id"]):
        client = admin
        assert client.post(f"/jobs/{job}/cancel").status_code == 200


def test_deleting_a_repository_in_use_is_409(world: World) -> None:
    body = refused(world, world.admin, "DELETE", "/repositories/demo", 409)
    assert body["code"] == "repo_in_use"
    assert world.admin.get("/repositories/demo").status_code == 200


def test_starting_or_cancelling_a_finished_job_is_409(world: World) -> None:
    refused(world, world.admin, "POST", "/jobs/{done}/start", 409)
    refused(world, world.admin, "POST", "/jobs/{done}/cancel", 409)


def test_registering_a_repository_twice_is_409(world: World) -> None:
    body = {"name": "demo", "gitUrl": str(world.server.data_dir)}
    refused(world, world.admin, "POST", "/repositories", 409, json=body)


@pytest.mark.parametrize(
    "credentials",
    [
        {"username": "alice", "password": "wrong-password"},
        {"username": "admin", "password": "anything-at-all"},
        {"username": "nobody", "password": "alice-pw-1"},
        {"username": "alice", "password": ""},
    ],
)
def test_login_with_wrong_credentials_is_401(world: World, credentials: dict[str, str]) -> None:
    body = refused(world, world.anonymous, "POST", "/auth/login", 401, json=credentials)
    assert body["code"] == "bad_credentials"


def test_a_weak_password_or_a_taken_name_is_refused(world: World) -> None:
    refused(world, world.admin, "POST", "/users", 422, json={"username": "d", "password": "short"})
    refused(
        world,
        world.admin,
        "POST",
        "/users",
        409,
        json={"username": "alice", "password": "another-pw"},
    )


def test_users_see_only_their_own_jobs_and_an_admin_sees_all(world: World) -> None:
    admin = world.admin
    created = admin.post("/users", json={"username": "dave", "password": "dave-pw-123"})
    assert created.status_code == 201, created.text
    assert created.json()["username"] == "dave" and created.json()["role"] == "user"
    login = world.anonymous.post(
        "/auth/login", json={"username": "dave", "password": "dave-pw-123"}
    )
    assert login.status_code == 200, login.text
    assert login.json()["expiresAt"] is not None
    dave = world.server.client(login.json()["token"])
    assert dave.get("/jobs").json()["jobs"] == []
    job = submit(dave, "--print dave", "spare", start=False)
    assert [j["id"] for j in dave.get("/jobs").json()["jobs"]] == [job]
    alices = world.alice.get("/jobs").json()["jobs"]
    assert world.ids["mine"] in [j["id"] for j in alices]
    assert {j["owner"] for j in alices} == {alices[0]["owner"]} != {created.json()["id"]}
    assert not {world.ids["done"], world.ids["created"], job} & {j["id"] for j in alices}
    everyone = {j["id"] for j in admin.get("/jobs", params={"limit": 500}).json()["jobs"]}
    assert {job, *world.ids.values()} <= everyone
    assert dave.get(f"/jobs/{job}").json()["owner"] == created.json()["id"]
    assert_problem(dave.get(world.url("/jobs/{mine}")), 404)
    assert admin.post(f"/jobs/{job}/cancel").json()["status"] == "cancelled"


def test_concurrent_requests_with_one_key_make_one_job(world: World) -> None:
    body = {"prompt": "--print burst", "repository": "spare", "agent": "fake"}
    before = len(fingerprint(world.admin)[1])

    def post(_: int) -> httpx.Response:
        with world.server.client() as client:
            return client.post("/jobs", json=body, headers={"Idempotency-Key": "burst"})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(16)))
    assert {a.status_code for a in answers} == {201}
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1
    assert len(fingerprint(world.admin)[1]) == before + 1
    assert world.admin.post(f"/jobs/{ids.pop()}/cancel").status_code == 200


def test_a_removed_users_token_is_401(world: World) -> None:
    credentials = {"username": "eve", "password": "eve-pw-123"}
    assert world.admin.post("/users", json=credentials).status_code == 201
    eve = world.server.client(world.anonymous.post("/auth/login", json=credentials).json()["token"])
    assert eve.get("/jobs").status_code == 200
    assert world.admin.delete("/users/eve").status_code == 200
    assert_problem(eve.get("/jobs"), 401)
    refused(world, world.anonymous, "POST", "/auth/login", 401, json=credentials)


def test_the_nothing_changed_check_sees_changes(world: World) -> None:
    """The fingerprint every refusal is judged by is not blind: an accepted upload and a new
    job each change it."""
    before = fingerprint(world.admin)
    staged = world.admin.post(
        world.url("/jobs/{created}/files"), files={"file": ("seen.txt", b"seen")}
    )
    assert staged.status_code == 201
    after_upload = fingerprint(world.admin)
    assert after_upload != before
    submit(world.admin, "--print seen", "spare", start=False)
    assert fingerprint(world.admin) != after_upload
