"""What the API tests share: judging an error answer, fingerprinting what a refused request
must not have changed, sending raw multipart bodies, and reading a server's event log with the
project's own readers (the log, not sampling, is the witness of what the server did)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from eventlog import EventLog
from projections import Envelope, State, evolve
from service.layout import DataDir
from service.state_store import events, load_state

PROBLEM_JSON = "application/problem+json"


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The answer is an RFC 9457 problem of this status; its body."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status, body
    assert isinstance(body["type"], str) and body["type"].startswith("https://"), body
    assert isinstance(body["title"], str) and body["title"], body
    assert isinstance(body["detail"], str) and body["detail"], body
    return body


def fingerprint(admin: httpx.Client) -> tuple[int, list[tuple[str, str, int]]]:
    """The newest seq and every job (id, status, number of staged files), as an admin sees
    them: a refused request changes neither."""
    last_seq = admin.get("/health").json()["log"]["lastSeq"]
    page = admin.get("/jobs", params={"limit": 500}).json()
    jobs = [(j["id"], j["status"], len(j["files"])) for j in page["jobs"]]
    return last_seq, jobs


def multipart(parts: list[tuple[bytes, bytes]], boundary: str = "rewind-test-boundary") -> bytes:
    """A multipart/form-data body with one part named `file` per (filename, content), the
    filename bytes sent exactly as given (httpx would percent-encode a NUL)."""
    body = b""
    for filename, content in parts:
        body += (
            f"--{boundary}\r\n".encode()
            + b'Content-Disposition: form-data; name="file"; filename="'
            + filename
            + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
            + content
            + b"\r\n"
        )
    return body + f"--{boundary}--\r\n".encode()


def multipart_headers(boundary: str = "rewind-test-boundary") -> dict[str, str]:
    return {"content-type": f"multipart/form-data; boundary={boundary}"}


def log_events(data_dir: Path) -> list[tuple[int, Envelope]]:
    """Every event of a data directory's log, in seq order (read-only: a server may run)."""
    log = EventLog.open_readonly(DataDir.at(data_dir).log)
    try:
        return list(events(log))
    finally:
        log.close()


def replay(data_dir: Path) -> Iterator[tuple[int, Envelope, State]]:
    """Each event with the state right after it, folded from seq 1 by the project's evolve."""
    state = State()
    for seq, envelope in log_events(data_dir):
        evolve(state, seq, envelope)
        yield seq, envelope, state


def state_at(data_dir: Path, seq: int | None = None) -> State:
    """The state right after `seq` (the log's end by default), as `rewind state --at` gives it."""
    state, _ = load_state(DataDir.at(data_dir), at=seq)
    return state
