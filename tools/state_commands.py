"""`rewind state`, `rewind history job`, `rewind snapshot`: the past, as the server saw it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from eventlog import CorruptLogError, DirLock, EventLog, LogError, segment_seq
from projections import Envelope, State, encode_state
from projections.events import tag_of
from projections.jobs import Job
from projections.plain import as_plain, fields_of
from service.layout import DataDir, resolve
from service.state_store import (
    JobEvents,
    LoadReport,
    events,
    load_state,
    seq_at_time,
    write_snapshot,
)
from tools.describe import ShowSecrets, shown
from tools.exits import DAMAGE, DamageFoundError
from tools.output import console, emit_json, note, utc, warn
from tools.progress import RecordProgress, log_end
from tools.state_summary import job_lines, summary

DirArg = Annotated[Path, typer.Argument(help="Data directory, or its log/ directory.")]

history_app = typer.Typer(no_args_is_help=True, help="Every event about one thing, in order.")


def state(
    directory: DirArg,
    at: Annotated[
        str | None, typer.Option("--at", help="A seq, or an ISO-8601 time (UTC if no zone).")
    ] = None,
    job: Annotated[str | None, typer.Option("--job", help="Show only this job.")] = None,
    json: Annotated[
        bool, typer.Option("--json", help="The whole state (or job) as one JSON object.")
    ] = False,
    show_secrets: ShowSecrets = False,
) -> None:
    """The state right after SEQ (or the last event at or before TIME): a summary, or --json.

    Damage past that point leaves the state intact (a warning names it); the state at the log's
    end needs every record, so damage anywhere fails it (exit 1).
    """
    data_dir = resolve(directory)
    log = EventLog.open_readonly(data_dir.log)
    target = _parse_point(log, at) if at is not None else None
    current, report = _load(data_dir, log, target)
    if report.tail_damage:
        warn(f"{report.tail_damage}; the state at seq {current.last_seq} comes before it")
    if target is not None and current.last_seq < target:
        note(f"seq {target} is past the log's end; showing the state at seq {current.last_seq}")
    one = _job(current, job) if job is not None else None
    if json:
        body = shown(as_plain(current if one is None else one), show_secrets)
        emit_json({"seq": current.last_seq, "load": msgspec.to_builtins(report), "state": body})
        return
    lines = summary(current) if job is None or one is None else job_lines(job, one)
    for line in [_header(current, report), *lines]:
        console.print(line, markup=False)


def _load(data_dir: DataDir, log: EventLog, target: int | None) -> tuple[State, LoadReport]:
    total = target if target is not None else log_end(data_dir)
    with RecordProgress("replaying", total) as bar:
        try:
            return load_state(data_dir, at=target, log=log, on_record=bar.callback)
        except CorruptLogError as err:
            raise DamageFoundError(f"{err}{_intact_hint(log, err)}") from err


def _intact_hint(log: EventLog, err: CorruptLogError) -> str:
    """Which `--at` still works: up to the last complete write batch before the damage.

    A batch is read whole or not at all, so the records of the damaged batch that precede the
    damaged frame are not readable either: the hint names where that batch starts, found by
    reading the damaged segment (batches never span segments) up to the damage.
    """
    first = segment_seq(err.file.name) or err.seq
    last = first - 1
    try:
        for record in log.read(first):
            if record.seq >= err.seq:
                break
            last = record.seq
    except CorruptLogError:
        pass
    if last < 1:
        return ""
    batch = f" (the damaged write batch starts at seq {last + 1})" if last + 1 < err.seq else ""
    return f"; seqs before {last + 1} are intact{batch}: try --at {last}"


def _job(current: State, job_id: str) -> Job:
    found = current.jobs.get(job_id)
    if found is not None:
        return found
    purged = current.jobs.purged.get(job_id)
    if purged is not None:
        raise LogError(
            f"job {job_id} was purged from the state at seq {purged} (it had been deleted); "
            f"--at {purged - 1} shows it before"
        )
    raise LogError(f"no job {job_id!r} in the state at seq {current.last_seq}")


def _header(current: State, report: LoadReport) -> str:
    source = (
        f"snapshot of seq {report.snapshot_seq} + {report.events_replayed} events"
        if report.snapshot_seq is not None
        else f"{report.events_replayed} events from seq 1"
    )
    return f"state at seq {current.last_seq} ({source}, {report.seconds:.2f} s)"


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
    json: Annotated[bool, typer.Option("--json", help="JSON Lines: one object per event.")] = False,
    show_secrets: ShowSecrets = False,
) -> None:
    """Every event about one job, in order, with seq and UTC time (hashes hidden).

    Damage in the log ends the history where it is (a warning says where; exit 1).
    """
    data_dir = resolve(directory)
    log = EventLog.open_readonly(data_dir.log)
    about_job = JobEvents(job_id)
    found = 0
    with RecordProgress("reading", log_end(data_dir)) as bar:
        tick = bar.callback
        try:
            for seq, envelope in events(log):
                if tick is not None:
                    tick(seq)
                if not about_job(envelope):
                    continue
                found += 1
                _print_event(seq, envelope, show_secrets, json)
        except CorruptLogError as err:
            warn(f"{err}; the history above ends before it")
            raise typer.Exit(DAMAGE) from None
    if not found:
        raise LogError(f"no events about job {job_id!r}")


def _print_event(seq: int, envelope: Envelope, show_secrets: bool, json: bool) -> None:
    fields = shown(fields_of(envelope.event), show_secrets)
    kind = tag_of(type(envelope.event))
    ts, actor = envelope.ts, envelope.actor
    if json:
        emit_json({"seq": seq, "ts": ts, "actor": actor, "type": kind, "event": fields})
    else:
        print(f"{seq:>10}  {utc(ts)}  {actor:<10} {kind}  {msgspec.json.encode(fields).decode()}")


def snapshot(directory: DirArg) -> None:
    """Write a snapshot of the current state (the server also takes them on its own)."""
    data_dir = resolve(directory)
    lock = DirLock(data_dir.log)  # a running server takes its own snapshots, of a newer end
    try:
        log = EventLog.open_readonly(data_dir.log)
        if log.last_seq == 0:
            raise LogError(f"the log at {data_dir.log} is empty: nothing to snapshot")
        with RecordProgress("replaying", log.last_seq) as bar:
            current, report = load_state(data_dir, log=log, on_record=bar.callback)
        path = write_snapshot(data_dir, current, log.checkpoint)
    finally:
        lock.release()
    console.print(
        f"snapshot of seq {current.last_seq} written to {path} "
        f"({len(encode_state(current))} bytes; {report.events_replayed} events replayed)",
        markup=False,
    )
