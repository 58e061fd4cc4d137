"""`rewind state`, `rewind history job`, `rewind snapshot`: the past, as the server saw it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer

from eventlog import EventLog, LogError
from eventlog.lock import DirLock
from projections import encode_state
from service.layout import resolve
from service.state_store import JobEvents, events, load_state, seq_at_time, write_snapshot
from tools.describe import as_dict
from tools.output import console, emit_json

DirArg = Annotated[Path, typer.Argument(help="Data directory, or its log/ directory.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]

history_app = typer.Typer(no_args_is_help=True, help="Every event about one thing, in order.")


def state(
    directory: DirArg,
    at: Annotated[
        str | None, typer.Option("--at", help="A seq, or an ISO-8601 time (UTC if no zone).")
    ] = None,
    job: Annotated[str | None, typer.Option("--job", help="Show only this job.")] = None,
    json: JsonOpt = False,
) -> None:
    """The state right after SEQ (or the last event at or before TIME)."""
    data_dir = resolve(directory)
    log = EventLog.open_readonly(data_dir.log)
    seq = _parse_point(log, at) if at is not None else None
    current, report = load_state(data_dir, at=seq, log=log)
    body: Any = as_dict(current)
    if job is not None:
        found = current.jobs.get(job)
        if found is None:
            raise LogError(f"no job {job!r} in the state at seq {current.last_seq}")
        body = as_dict(found)
    result = {"seq": current.last_seq, "load": msgspec.to_builtins(report), "state": body}
    if json:
        emit_json(result)
        return
    console.print_json(msgspec.json.encode(result).decode())


def _parse_point(log: EventLog, value: str) -> int:
    if value.isascii() and value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise LogError(f"--at takes a seq or an ISO-8601 time, not {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return seq_at_time(log, moment.timestamp())


@history_app.command("job")
def history_job(
    directory: DirArg,
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    json: JsonOpt = False,
) -> None:
    """Every event about one job, in order, with seq and time."""
    log = EventLog.open_readonly(resolve(directory).log)
    about_job = JobEvents(job_id)
    found = 0
    for seq, envelope in events(log):
        if not about_job(envelope):
            continue
        found += 1
        fields: dict[str, Any] = msgspec.to_builtins(envelope.event)
        kind = fields.pop("type")
        if json:
            emit_json(
                {
                    "seq": seq,
                    "ts": envelope.ts,
                    "actor": envelope.actor,
                    "type": kind,
                    "event": fields,
                }
            )
        else:
            when = datetime.fromtimestamp(envelope.ts).astimezone().isoformat(timespec="seconds")
            print(
                f"{seq:>10}  {when}  {envelope.actor:<10} {kind}  "
                f"{msgspec.json.encode(fields).decode()}"
            )
    if not found:
        raise LogError(f"no events about job {job_id!r}")


def snapshot(directory: DirArg) -> None:
    """Write a snapshot of the current state (the server also takes them on its own)."""
    data_dir = resolve(directory)
    lock = DirLock(data_dir.log)  # a running server takes its own snapshots, of a newer end
    try:
        log = EventLog.open_readonly(data_dir.log)
        if log.last_seq == 0:
            raise LogError(f"the log at {data_dir.log} is empty: nothing to snapshot")
        current, report = load_state(data_dir, log=log)
        path = write_snapshot(data_dir, current, log.checkpoint)
    finally:
        lock.release()
    console.print(
        f"snapshot of seq {current.last_seq} written to {path} "
        f"({len(encode_state(current))} bytes; {report.events_replayed} events replayed)",
        markup=False,
    )
