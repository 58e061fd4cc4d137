"""What a client reads back from a job: its output (by offset, or followed live as server-sent
events until the job ends), its workspace (listed and downloaded), its history from the log,
and the files it was given (staged, copied into `files/`, named in the prompt by `{{name}}`).
One server serves the module; each test runs its own jobs."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.state_store import JobEvents
from tests.api.helpers import assert_problem, log_events
from tests.support.server import (
    RewindServer,
    git_repo,
    register,
    submit,
    wait_for,
    wait_terminal,
)


@dataclass
class Served:
    server: RewindServer
    admin: httpx.Client


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("output")
    server = RewindServer(tmp / "data").start()
    try:
        admin = server.client()
        register(admin, "demo", git_repo(tmp / "src", {"README.md": "# demo\n", "src/a.py": "1\n"}))
        yield Served(server, admin)
    finally:
        server.kill()


def _finished(served: Served, prompt: str) -> tuple[str, dict[str, Any]]:
    job = submit(served.admin, prompt, "demo")
    return job, wait_terminal(served.admin, job)


def test_output_from_an_offset(served: Served) -> None:
    admin = served.admin
    job, shown = _finished(served, "--lines 5 --stderr oops")
    assert shown["status"] == "completed"
    whole = admin.get(f"/jobs/{job}/output")
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "application/octet-stream"
    assert whole.content == b"oops\nline 1\nline 2\nline 3\nline 4\nline 5\n"
    assert whole.headers["x-next-offset"] == str(len(whole.content))
    for offset in (0, 1, 5, 12, len(whole.content) - 1):
        part = admin.get(f"/jobs/{job}/output", params={"offset": offset})
        assert part.content == whole.content[offset:]
        assert part.headers["x-next-offset"] == str(len(whole.content))
    for offset in (len(whole.content), len(whole.content) + 100):
        past = admin.get(f"/jobs/{job}/output", params={"offset": offset})
        assert past.status_code == 200 and past.content == b""
        assert past.headers["x-next-offset"] == str(offset)


def test_large_output_comes_in_chunks_that_join_exactly(served: Served) -> None:
    size = 2_500_000
    job, _ = _finished(served, f"--bytes {size}")
    offset, received = 0, b""
    while True:
        part = served.admin.get(f"/jobs/{job}/output", params={"offset": offset})
        if not part.content:
            break
        assert len(part.content) <= 1 << 20
        received += part.content
        offset = int(part.headers["x-next-offset"])
        assert offset == len(received)
    assert received == b"x" * size


def _follow(client: httpx.Client, job: str, offset: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """Every server-sent event of `output?follow=1` until the server ends the stream."""
    found: list[tuple[str, dict[str, Any]]] = []
    kind = ""
    params = {"follow": "1", "offset": str(offset)}
    with client.stream("GET", f"/jobs/{job}/output", params=params, timeout=60) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            if line.startswith("event:"):
                kind = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                found.append((kind, json.loads(line.removeprefix("data:"))))
    return found


def test_follow_streams_output_live_until_the_job_ends(served: Served) -> None:
    admin = served.admin
    job = submit(admin, "--lines 6 --interval 0.4 --exit 3", "demo")
    events = _follow(admin, job)
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "end" and kinds.count("end") == 1
    assert events[-1][1] == {"status": "failed", "exitCode": 3}
    outputs = [data for kind, data in events if kind == "output"]
    assert len(outputs) >= 2, "the output came in one piece: it was not followed live"
    text, offset = "", 0
    for data in outputs:
        text += data["text"]
        offset = data["offset"]
        assert offset == len(text.encode()), "each event's offset is where the next begins"
    assert text == "".join(f"line {n}\n" for n in range(1, 7))
    assert admin.get(f"/jobs/{job}").json()["status"] == "failed"
    # following a finished job from an offset: the rest, then the end at once
    rest = _follow(admin, job, offset=len("line 1\n"))
    assert "".join(d["text"] for k, d in rest if k == "output") == text[len("line 1\n") :]
    assert rest[-1] == ("end", {"status": "failed", "exitCode": 3})


def test_browsing_and_downloading_the_workspace(served: Served) -> None:
    admin = served.admin
    job, shown = _finished(served, "--write out/result.txt=42 --write 'out/with space.txt=a b'")
    assert shown["status"] == "completed"
    root = admin.get(f"/jobs/{job}/files")
    assert root.status_code == 200
    entries = {e["name"]: e for e in root.json()}
    assert entries["README.md"] == {"name": "README.md", "type": "file", "size": 7}
    assert entries["src"]["type"] == entries["out"]["type"] == entries[".git"]["type"] == "dir"
    assert [e["name"] for e in root.json()] == sorted(entries)
    listing = admin.get(f"/jobs/{job}/files/out").json()
    assert listing == [
        {"name": "result.txt", "type": "file", "size": 2},
        {"name": "with space.txt", "type": "file", "size": 3},
    ]
    assert admin.get(f"/jobs/{job}/files/out/result.txt").content == b"42"
    assert admin.get(f"/jobs/{job}/files/out/with%20space.txt").content == b"a b"
    assert admin.get(f"/jobs/{job}/files/src/a.py").content == b"1\n"
    assert_problem(admin.get(f"/jobs/{job}/files/out/nothing.txt"), 404)
    workspace = served.server.data_dir / shown["workspace"]
    assert (workspace / "out" / "result.txt").read_text() == "42"


def test_events_list_the_jobs_history_from_the_log(served: Served) -> None:
    admin = served.admin
    job, _ = _finished(served, "--print hi")
    events = admin.get(f"/jobs/{job}/events").json()
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    types = [e["type"] for e in events]
    lifecycle = [
        "job.created",
        "job.enqueued",
        "batch.formed",
        "batch.prepared",
        "job.workspace-created",
        "job.launching",
        "job.process-started",
        "job.completed",
        "batch.ended",
    ]
    assert [t for t in types if t in lifecycle] == lifecycle, types
    created = events[0]
    assert created["event"]["job_id"] == job and created["event"]["prompt"] == "--print hi"
    assert created["actor"] == "admin" and created["ts"] > 0
    started = next(e for e in events if e["type"] == "job.process-started")["event"]
    assert started["pid"] > 0 and started["boot_id"]
    # exactly the log's events about this job, as the project's own reader picks them
    about = JobEvents(job)
    in_log = [seq for seq, env in log_events(served.server.data_dir) if about(env)]
    assert seqs == in_log


def test_staged_files_reach_the_workspace_and_the_prompt(served: Served) -> None:
    admin = served.admin
    prompt = (
        "--echo-argv --echo-cwd --print {{notes.txt}} --print {{ data.csv }} "
        "--print {{missing.txt}}"
    )
    job = submit(admin, prompt, "demo", start=False)
    notes, data = b"remember the milk\n", b"a,b\n1,2\n"
    first = admin.post(
        f"/jobs/{job}/files",
        files=[("file", ("notes.txt", notes)), ("file", ("data.csv", data))],
    )
    assert first.status_code == 201, first.text
    assert first.json() == [
        {"name": "notes.txt", "size": len(notes), "sha256": hashlib.sha256(notes).hexdigest()},
        {"name": "data.csv", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
    ]
    staging = served.server.data_dir / "staging" / job
    assert sorted(os.listdir(staging)) == ["data.csv", "notes.txt"]
    assert admin.post(f"/jobs/{job}/start").status_code == 200
    shown = wait_terminal(admin, job)
    assert shown["status"] == "completed", shown
    assert {f["name"] for f in shown["files"]} == {"notes.txt", "data.csv"}
    lines = admin.get(f"/jobs/{job}/output").text.splitlines()
    argv = json.loads(lines[0])["argv"]
    assert argv[-1] == (
        "--echo-argv --echo-cwd --print files/notes.txt --print files/data.csv "
        "--print {{missing.txt}}"
    )
    workspace = served.server.data_dir / shown["workspace"]
    assert Path(json.loads(lines[1])["cwd"]) == workspace.resolve()
    assert lines[2:] == ["files/notes.txt", "files/data.csv", "{{missing.txt}}"]
    assert admin.get(f"/jobs/{job}/files/files/notes.txt").content == notes
    assert admin.get(f"/jobs/{job}/files/files/data.csv").content == data
    assert (workspace / "files" / "notes.txt").read_bytes() == notes
    wait_for(lambda: not staging.exists())


def test_follow_never_cuts_a_character_in_two(served: Served) -> None:
    """The server reads the output in 1 MiB pieces; a two-byte character straddles the first
    boundary (the agent writes 1 MiB less one byte, a process it spawned writes the rest a
    second later). Each event's text is whole characters, its offset where the next begins."""
    late = "--sleep 1 --print 'é — ünïcode ✓'"
    job, _ = _finished(served, f'--bytes {(1 << 20) - 1} --spawn "{late}" --sleep 2')
    events = _follow(served.admin, job)
    outputs = [data for kind, data in events if kind == "output"]
    text = "".join(data["text"] for data in outputs)
    assert "\ufffd" not in text
    assert text == "x" * ((1 << 20) - 1) + "é — ünïcode ✓\n"
    consumed = 0
    for data in outputs:
        consumed += len(data["text"].encode())
        assert data["offset"] == consumed
