"""`rewind log verify|dump|stat|repair`: read-only inspection and the operator's explicit cut."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table

from eventlog import EventLog, LogError
from eventlog.repair import accept_loss as accept_loss_of_records
from eventlog.repair import truncate_after
from eventlog.verify import VerifyReport, verify_log
from projections import State, check, decode, evolve
from service.layout import resolve
from tools.describe import describe
from tools.output import console, emit_json, errors

app = typer.Typer(no_args_is_help=True, help="Inspect, verify and repair a log.")

DirArg = Annotated[Path, typer.Argument(help="Data directory, or its log/ directory.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@app.command()
def verify(
    directory: DirArg,
    json: JsonOpt = False,
    deep: Annotated[
        bool, typer.Option("--deep", help="Also decode every event and check invariants.")
    ] = False,
) -> None:
    """Check every segment header, CRC and seq; exit 1 on damage. Never modifies anything."""
    log_dir = resolve(directory).log
    deep_check = _DeepCheck() if deep else None
    total = sum(p.stat().st_size for p in log_dir.glob("*.seg"))
    with _progress(enabled=not json and sys.stderr.isatty()) as progress:
        task = progress.add_task("verifying", total=total)
        report = verify_log(
            log_dir,
            on_record=deep_check.record if deep_check else None,
            on_progress=lambda n: progress.advance(task, n),
        )
    problems = deep_check.problems if deep_check else []
    if json:
        emit_json({**msgspec.to_builtins(report), "healthy": report.healthy, "deep": problems})
    else:
        _print_verify(report, problems)
    if not report.healthy or problems:
        raise typer.Exit(1)


class _DeepCheck:
    """Folds every event and runs the invariants after each; collects what breaks."""

    def __init__(self) -> None:
        self.state = State()
        self.problems: list[str] = []

    def record(self, seq: int, payload: bytes) -> None:
        if len(self.problems) >= 100:
            return
        try:
            evolve(self.state, seq, decode(payload))
        except Exception as err:  # any decode or fold failure is a finding, not a crash
            self.problems.append(f"seq {seq}: cannot apply event: {err}")
            return
        self.problems.extend(f"seq {seq}: {problem}" for problem in check(self.state))


def _print_verify(report: VerifyReport, problems: list[str]) -> None:
    for damage in report.damage:
        label = "damage" if damage.fatal else "note"
        detail = f": {damage.detail}" if damage.detail else ""
        console.print(
            f"{label}: {damage.kind} in {damage.file} at offset {damage.offset} "
            f"(seq {damage.seq}){detail}",
            markup=False,
        )
    for problem in problems:
        console.print(f"invariant: {problem}", markup=False)
    status = "ok" if report.healthy and not problems else "DAMAGED"
    console.print(
        f"{status}: {report.records} records in {len(report.segments)} segments, "
        f"seq {report.first_seq}..{report.last_seq}, {report.bytes} bytes",
        markup=False,
    )


@app.command()
def dump(
    directory: DirArg,
    start: Annotated[int, typer.Option("--from", help="First seq.")] = 1,
    stop: Annotated[int | None, typer.Option("--to", help="Last seq.")] = None,
    json: JsonOpt = False,
) -> None:
    """One record per line: seq, size and the decoded event."""
    log = EventLog.open_readonly(resolve(directory).log)
    for record in log.read(start):
        if stop is not None and record.seq > stop:
            break
        row = describe(record.seq, record.payload)
        if json:
            emit_json(row)
        elif "hex" in row:
            print(f"{row['seq']:>10} {row['size']:>7}B  {row['hex']}")
        else:
            fields = msgspec.json.encode(row["event"]).decode()
            print(f"{row['seq']:>10} {row['size']:>7}B  {row['type']}  {fields}")


@app.command()
def stat(directory: DirArg, json: JsonOpt = False) -> None:
    """Segments, sizes, record counts and seq ranges."""
    report = verify_log(resolve(directory).log)
    if json:
        emit_json(msgspec.to_builtins(report.segments))
        return
    table = Table("segment", "first seq", "last seq", "records", "bytes")
    for segment in report.segments:
        table.add_row(
            Path(segment.file).name,
            str(segment.first_seq),
            str(segment.last_seq),
            str(segment.records),
            str(segment.bytes),
        )
    console.print(table)
    console.print(f"{report.records} records, {report.bytes} bytes", markup=False)


@app.command()
def repair(
    directory: DirArg,
    truncate_after_seq: Annotated[
        int | None,
        typer.Option("--truncate-after", help="Keep records up to this seq.", min=0),
    ] = None,
    accept_loss: Annotated[
        bool,
        typer.Option(
            "--accept-loss",
            help="The log ends before its snapshots: accept that those records are gone.",
        ),
    ] = False,
) -> None:
    """Cut a corrupt log after SEQ, or accept a loss of records. Refuses while locked.

    Every removed byte, and every snapshot of a state past the kept end, moves to
    log/repair-<time>/ (made only when something moves; preallocated zeros are not copied).
    """
    if (truncate_after_seq is None) == (not accept_loss):
        raise LogError("say what to repair: --truncate-after SEQ or --accept-loss (not both)")
    data_dir = resolve(directory)
    if accept_loss:
        report = accept_loss_of_records(data_dir.log, data_dir.snapshots)
        if report.backup_dir is None:
            console.print(
                f"nothing to accept: no snapshot is past the log's end (seq "
                f"{report.kept_last_seq})",
                markup=False,
            )
            return
        console.print(
            f"the log ends at seq {report.kept_last_seq}; moved {len(report.snapshots_moved)} "
            f"snapshots past it to {report.backup_dir}",
            markup=False,
        )
        return
    assert truncate_after_seq is not None
    report = truncate_after(data_dir.log, truncate_after_seq, data_dir.snapshots)
    if report.backup_dir is None:
        console.print(
            f"nothing to cut: the log already ends at seq {report.kept_last_seq}",
            markup=False,
        )
        return
    zeros = (
        f"; dropped {report.zero_fill_dropped} bytes of preallocated zeros"
        if report.zero_fill_dropped
        else ""
    )
    console.print(
        f"kept records up to seq {report.kept_last_seq}; moved {report.bytes_removed} bytes "
        f"({report.segments_moved} whole segments) and {len(report.snapshots_moved)} snapshots "
        f"to {report.backup_dir}{zeros}",
        markup=False,
    )


def _progress(enabled: bool) -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=True,
        console=errors,
    )
