"""`rewind crashes DIR`: every crash in the history, what led up to it and how it recovered.

A ``server.started`` whose previous boot never wrote ``server.stopping`` is a crash. For each:
when the server came back, the last events the crashed process made durable, and the
``recovery.completed`` report of the boot that followed.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from eventlog import EventLog
from projections import decode
from projections.events import RecoveryCompleted, ServerStarted, ServerStopping
from projections.plain import as_plain
from projections.redact import redacted
from service.layout import resolve
from tools.describe import describe
from tools.output import console, emit_json

BEFORE = 5
"""Events shown before each crash."""


def crashes(
    directory: Annotated[Path, typer.Argument(help="Data directory, or its log/ directory.")],
    json: Annotated[bool, typer.Option("--json", help="One JSON object per crash.")] = False,
) -> None:
    """List the crashes in the log: time, the last events before, the recovery that followed."""
    found = find_crashes(EventLog.open_readonly(resolve(directory).log))
    if json:
        for crash in found:
            emit_json(crash)
        return
    if not found:
        console.print("no crashes: every boot ended with server.stopping", markup=False)
        return
    for crash in found:
        console.print(
            f"crash before seq {crash['seq']} (restarted {_utc(crash['restarted_at'])})",
            markup=False,
        )
        for row in crash["before"]:
            console.print(f"  {row['seq']:>10}  {row['type']}", markup=False)
        report = crash["recovery"]
        if report is None:
            console.print(
                "  recovery: not completed (crashed again during recovery?)", markup=False
            )
        else:
            console.print(
                f"  recovery: {report['events_replayed']} events replayed, "
                f"{report['jobs_reattached']} re-attached, {report['jobs_lost']} lost, "
                f"{report['jobs_finished_while_down']} finished while down, "
                f"{report['torn_bytes_cut']} torn bytes cut",
                markup=False,
            )


def find_crashes(log: EventLog) -> list[dict[str, Any]]:
    recent: deque[tuple[int, bytes]] = deque(maxlen=BEFORE)
    up = False
    found: list[dict[str, Any]] = []
    waiting: dict[str, Any] | None = None
    for record in log.read(1):
        event = decode(record.payload).event
        if isinstance(event, ServerStarted):
            if up:
                waiting = {
                    "seq": record.seq,
                    "restarted_at": event.at,
                    "boot": event.boot_id,
                    "before": [describe(seq, payload) for seq, payload in recent],
                    "recovery": None,
                }
                found.append(waiting)
            else:
                waiting = None
            up = True
        elif isinstance(event, ServerStopping):
            up = False
        elif isinstance(event, RecoveryCompleted) and waiting is not None:
            waiting["recovery"] = redacted(as_plain(event.report))
            waiting = None
        recent.append((record.seq, record.payload))
    return found


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
