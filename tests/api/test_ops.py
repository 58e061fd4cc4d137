"""What operators and their tools read: /health (ready, recovering, degraded), /metrics
(Prometheus text, strictly parsed; a token needed unless the config makes them public), /schema
(the OpenAPI document lists every endpoint).

Recovery is held open by a `git` on the server's PATH that waits for a gate before running the
real git: the server's recovery checks each repository with git, so for as long as the gate is
closed the server is, observably, recovering."""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import assert_problem
from tests.support.server import RewindServer, git_repo, register, submit, wait_for, wait_terminal

STATUSES = {
    "created",
    "queued",
    "waiting",
    "preparing",
    "running",
    "cancelling",
    "deleting",
    "completed",
    "failed",
    "timed_out",
    "cancelled",
    "lost",
}


@dataclass
class Ops:
    server: RewindServer
    admin: httpx.Client
    hold: Path
    """While this file exists, every git command of the server waits."""


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    tmp = tmp_path_factory.mktemp("ops")
    real_git = shutil.which("git")
    assert real_git is not None
    shims = tmp / "bin"
    shims.mkdir()
    hold = tmp / "hold-git"
    shim = shims / "git"
    shim.write_text(
        f'#!/bin/sh\nwhile [ -e "{hold}" ]; do sleep 0.05; done\nexec "{real_git}" "$@"\n'
    )
    shim.chmod(0o755)
    env = {"PATH": f"{shims}:{Path(real_git).parent}:/usr/bin:/bin"}
    server = RewindServer(tmp / "data", env=env).start()
    try:
        admin = server.client()
        register(admin, "demo", git_repo(tmp / "src"))
        register(admin, "doomed", git_repo(tmp / "doomed"))
        job = submit(admin, "--print ok", "demo")
        assert wait_terminal(admin, job)["status"] == "completed"
        yield Ops(server, admin, hold)
    finally:
        hold.unlink(missing_ok=True)
        server.kill()


def test_health_is_ready_without_a_token(ops: Ops) -> None:
    answer = httpx.get(f"{ops.server.base_url}/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ready" and body["problems"] == []
    assert body["log"]["writable"] is True and body["log"]["lastSeq"] > 0
    assert set(body["jobs"]) == STATUSES and body["jobs"]["completed"] == 1


SAMPLE = re.compile(
    r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r'(?:\{(?P<labels>[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*)\})?'
    r" (?P<value>[-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|Inf|NaN))"
)
FAMILY_SUFFIXES = ("_bucket", "_sum", "_count", "_total")


def parse_prometheus(text: str) -> dict[str, dict[str, Any]]:
    """The text exposition format, strictly: every sample belongs to a family announced by
    HELP and TYPE before it, every line parses, no family appears twice."""
    families: dict[str, dict[str, Any]] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert name not in families, f"family {name} twice"
            families[name] = {"help": help_text, "type": None, "samples": []}
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert families[name]["type"] is None and not families[name]["samples"]
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            families[name]["type"] = kind
        else:
            match = SAMPLE.fullmatch(line)
            assert match, f"not a sample line: {line!r}"
            name = match["name"]
            family = name if name in families else name.rsplit("_", 1)[0]
            assert family in families and name.removeprefix(family) in ("", *FAMILY_SUFFIXES)
            assert families[family]["type"] is not None, f"{name} before its TYPE"
            labels = dict(
                re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', match["labels"] or "")
            )
            value = float(match["value"].replace("Inf", "inf"))
            families[family]["samples"].append((name, labels, value))
    return families


def test_metrics_are_prometheus_text(ops: Ops) -> None:
    answer = ops.admin.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = parse_prometheus(answer.text)
    health = ops.admin.get("/health").json()
    jobs = families["rewind_jobs"]
    assert jobs["type"] == "gauge"
    by_status = {labels["status"]: value for _, labels, value in jobs["samples"]}
    assert by_status == {status: float(n) for status, n in health["jobs"].items()}
    for name in ("rewind_commit_seconds", "rewind_fsync_seconds"):
        histogram = families[name]
        assert histogram["type"] == "histogram"
        samples = histogram["samples"]
        buckets = [(s[1]["le"], s[2]) for s in samples if s[0].endswith("_bucket")]
        bounds = [float(le) for le, _ in buckets]
        counts = [count for _, count in buckets]
        assert bounds == sorted(bounds) and math.isinf(bounds[-1])
        assert counts == sorted(counts), "histogram buckets are cumulative"
        (count,) = [v for n, _, v in samples if n == f"{name}_count"]
        (total,) = [v for n, _, v in samples if n == f"{name}_sum"]
        assert counts[-1] == count > 0 and total > 0
    assert families["rewind_last_seq"]["samples"][0][2] >= health["log"]["lastSeq"]
    assert families["rewind_queue_depth"]["type"] == "gauge"


def test_metrics_need_a_token_unless_the_config_makes_them_public(ops: Ops, tmp_path: Path) -> None:
    assert_problem(httpx.get(f"{ops.server.base_url}/metrics"), 401)
    wrong = {"Authorization": "Bearer rw_not-a-token"}
    assert_problem(httpx.get(f"{ops.server.base_url}/metrics", headers=wrong), 401)
    public = RewindServer(tmp_path / "data", metrics_public=True).start()
    try:
        answer = httpx.get(f"{public.base_url}/metrics")
        assert answer.status_code == 200 and "rewind_last_seq" in answer.text
    finally:
        public.kill()


ENDPOINTS = {
    "/jobs": {"get", "post"},
    "/jobs/{job_id}": {"get", "delete"},
    "/jobs/{job_id}/files": {"get", "post"},
    "/jobs/{job_id}/files/{path}": {"get"},
    "/jobs/{job_id}/start": {"post"},
    "/jobs/{job_id}/cancel": {"post"},
    "/jobs/{job_id}/output": {"get"},
    "/jobs/{job_id}/events": {"get"},
    "/jobs/{job_id}/callbacks": {"get"},
    "/jobs/{job_id}/callbacks/{index}/retry": {"post"},
    "/repositories": {"get", "post"},
    "/repositories/{name}": {"get", "delete"},
    "/repositories/{name}/settings": {"put"},
    "/users": {"post"},
    "/users/{username}": {"delete"},
    "/auth/login": {"post"},
    "/health": {"get"},
    "/metrics": {"get"},
    "/stats": {"get"},
    "/api/admin/recovery": {"get"},
}


def test_schema_lists_every_endpoint(ops: Ops) -> None:
    document = httpx.get(f"{ops.server.base_url}/schema/openapi.json")
    assert document.status_code == 200
    schema = document.json()
    assert schema["openapi"].startswith("3.") and schema["info"]["title"] == "rewind"
    paths = {
        path: set(item) & {"get", "post", "put", "delete"} for path, item in schema["paths"].items()
    }
    assert paths == ENDPOINTS
    job = schema["components"]["schemas"]["NewJob"]["properties"]
    assert {"prompt", "repository", "agent", "options", "callbacks"} <= set(job)
    page = httpx.get(f"{ops.server.base_url}/schema")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]


def test_health_says_recovering_while_recovery_runs(ops: Ops) -> None:
    """Reads are answered meanwhile; writes are refused with 503 and Retry-After."""
    ops.server.stop()
    ops.hold.touch()
    try:
        ops.server.start(wait=False)
        seen = wait_for(
            lambda: _health(ops.server).get("status") == "recovering" and _health(ops.server)
        )
        answer = httpx.get(f"{ops.server.base_url}/health")
        assert answer.status_code == 503 and answer.json()["status"] == "recovering", seen
        assert ops.admin.get("/jobs").status_code == 200
        refused = ops.admin.post(
            "/jobs", json={"prompt": "--print x", "repository": "demo", "agent": "fake"}
        )
        body = assert_problem(refused, 503)
        assert body["code"] == "recovering" and refused.headers["retry-after"] == "1"
    finally:
        ops.hold.unlink()
    assert ops.server.wait_ready()["status"] == "ready"


def _health(server: RewindServer) -> dict[str, Any]:
    try:
        body: dict[str, Any] = httpx.get(f"{server.base_url}/health", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return {}
    return body


def test_health_says_degraded_when_a_repository_is_damaged(ops: Ops) -> None:
    """The server stays up; the damaged repository's job fails, the others run."""
    shutil.rmtree(ops.server.data_dir / "repos" / "doomed" / ".git" / "objects")
    failed = wait_terminal(ops.admin, submit(ops.admin, "--print x", "doomed"))
    assert failed["status"] == "failed" and "damaged" in failed["error"], failed
    answer = httpx.get(f"{ops.server.base_url}/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "degraded"
    assert any("doomed" in problem for problem in body["problems"]), body
    assert ops.admin.get("/repositories/doomed").json()["degraded"]
    fine = wait_terminal(ops.admin, submit(ops.admin, "--print fine", "demo"))
    assert fine["status"] == "completed"
