"""What the side-effect tests share: reading the server's log from outside (as the project's
own `rewind log dump` does) and waiting for events in it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eventlog import EventLog
from tests.support.server import RewindServer, git_repo, register, wait_for
from tools.describe import describe

STARTED: list[RewindServer] = []
"""Every server ``serving`` started, so a failing test's report can show their logs."""


def log_events(data_dir: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """Every decoded event of the data directory's log (seq, type, event, ...), oldest first;
    only those of type ``kind`` when given. Reads a live log without its lock."""
    log = EventLog.open_readonly(data_dir / "log")
    try:
        rows = [describe(record.seq, record.payload) for record in log.read(1)]
    finally:
        log.close()
    assert all("type" in row for row in rows), "every record of the log decodes"
    return [row for row in rows if kind is None or row["type"] == kind]


def wait_event(data_dir: Path, kind: str, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
    """The first event of type ``kind`` whose fields include ``fields``, once it is logged."""

    def found() -> dict[str, Any] | None:
        for row in log_events(data_dir, kind):
            if all(row["event"].get(k) == v for k, v in fields.items()):
                return row
        return None

    return wait_for(found, timeout)  # type: ignore[no-any-return]


def of_job(rows: list[dict[str, Any]], job_id: str) -> list[dict[str, Any]]:
    """The events about the job: naming it, or one of its callbacks (``<job>-cb<n>``)."""
    return [
        row
        for row in rows
        if row["event"].get("job_id") == job_id
        or str(row["event"].get("callback_id", "")).startswith(f"{job_id}-cb")
    ]


@contextmanager
def serving(
    data_dir: Path, *, env: Mapping[str, str] | None = None, **settings: Any
) -> Iterator[RewindServer]:
    """A started server on ``data_dir``; killed when the block ends, whatever happened."""
    server = RewindServer(data_dir, env=env, **settings)
    STARTED.append(server)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.kill()


def demo_repo(server: RewindServer, where: Path, name: str = "demo") -> str:
    """A real git repository (a tracked README.md), registered and cloned."""
    with server.client() as client:
        register(client, name, git_repo(where / f"{name}-src"))
    return name


def explain(server: RewindServer) -> str:
    """What the server's log and output held: a crash test that fails once in a hundred runs
    must be diagnosable from that one run."""
    try:
        rows = log_events(server.data_dir)
        history = "\n".join(f"{r['seq']:>6} {r['type']} {r['event']}"[:300] for r in rows[-80:])
    except Exception as err:  # the report must not hide the failure itself
        history = f"(log unreadable: {err})"
    return f"--- last events ---\n{history}\n--- server output ---\n{server.output()[-4000:]}"
