"""`rewind log verify|dump|stat|repair`: read-only inspection and the operator's explicit cut."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.table import Table

from eventlog import CorruptLogError, EventLog, LogError, VerifyReport, truncate_after, verify_log
from eventlog import accept_loss as accept_loss_of_records
from projections import State, decode, evolve
from projections.invariants import check_structure
from service.layout import resolve
from tools.describe import ShowSecrets, describe
from tools.exits import DAMAGE
from tools.output import console, emit_json, note, warn
from tools.progress import RecordProgress, log_end

app = typer.Typer(no_args_is_help=True, help="Inspect, verify and repair a log.")

DirArg = Annotated[Path, typer.Argument(help="Data directory, or its log/ directory.")]


@app.command()
def verify(
    directory: DirArg,
    json: Annotated[bool, typer.Option("--json", help="One JSON object (see README).")] = False,
    deep: Annotated[
        bool, typer.Option("--deep", help="Also decode every event and check invariants.")
    ] = False,
) -> None:
    """Check every segment header, CRC and seq; exit 1 on damage. Never modifies anything.

    With --deep, an undecodable event or a failed invariant is damage too.
    """
    data_dir = resolve(directory)
    deep_check = _DeepCheck() if deep else None
    with RecordProgress("verifying", log_end(data_dir)) as bar:
        report = verify_log(data_dir.log, on_record=_walker(deep_check, bar.callback))
    problems = deep_check.problems if deep_check else []
    healthy = report.healthy and not problems
    if json:
        body = _report_json(report, healthy)
        if deep_check is not None:
            body["deep"] = problems
        emit_json(body)
    else:
        _print_damage(report)
        for problem in problems:
            console.print(f"invariant: {problem}", markup=False)
        console.print(
            f"{'ok' if healthy else 'DAMAGED'}: {report.records} records in "
            f"{len(report.segments)} segments, seq {report.first_seq}..{report.last_seq}, "
            f"{report.bytes} bytes",
            markup=False,
        )
    if not healthy:
        raise typer.Exit(DAMAGE)


class _DeepCheck:
    """Folds every event and checks the domain's rules as it goes, fast enough for long logs:
    the folds' anomalies (what each event broke) after every event, the whole-state rules
    every ``FULL_EVERY`` events and at the end."""

    FULL_EVERY = 10_000
    LIMIT = 100

    def __init__(self) -> None:
        self.state = State()
        self.failures: list[str] = []
        self.structure: dict[str, None] = {}

    def record(self, seq: int, payload: bytes) -> None:
        try:
            evolve(self.state, seq, decode(payload))
        except Exception as err:  # any decode or fold failure is a finding, not a crash
            self.failures.append(f"seq {seq}: cannot apply event: {err}")
        if seq % self.FULL_EVERY == 0:
            self._structure(f"at seq {seq}")

    def _structure(self, where: str) -> None:
        if len(self.structure) < self.LIMIT:
            for problem in check_structure(self.state):
                self.structure.setdefault(f"{where}: {problem}")

    @property
    def problems(self) -> list[str]:
        self._structure(f"at seq {self.state.last_seq}")
        state = self.state
        found = self.failures[: self.LIMIT] + state.anomalies + list(self.structure)
        if state.anomaly_count > len(state.anomalies):
            found.append(f"... and {state.anomaly_count - len(state.anomalies)} more anomalies")
        return found


def _walker(
    deep: _DeepCheck | None, tick: Callable[[int], None] | None
) -> Callable[[int, bytes], None] | None:
    """What verify_log calls per record: the deep check, the progress bar, both or nothing."""
    if deep is None:
        return None if tick is None else lambda seq, _payload: tick(seq)
    if tick is None:
        return deep.record

    def both(seq: int, payload: bytes) -> None:
        deep.record(seq, payload)
        tick(seq)

    return both


def _report_json(report: VerifyReport, healthy: bool) -> dict[str, Any]:
    body: dict[str, Any] = msgspec.to_builtins(report)
    body["healthy"] = healthy
    return body


def _print_damage(report: VerifyReport) -> None:
    for damage in report.damage:
        label = "damage" if damage.fatal else "note"
        detail = f": {damage.detail}" if damage.detail else ""
        console.print(
            f"{label}: {damage.kind} in {damage.file} at offset {damage.offset} "
            f"(seq {damage.seq}){detail}",
            markup=False,
        )


@app.command()
def dump(
    directory: DirArg,
    start: Annotated[int, typer.Option("--from", help="First seq.")] = 1,
    stop: Annotated[int | None, typer.Option("--to", help="Last seq.")] = None,
    json: Annotated[
        bool, typer.Option("--json", help="JSON Lines: one object per record.")
    ] = False,
    show_secrets: ShowSecrets = False,
) -> None:
    """One record per line: seq, size and the decoded event (hashes hidden).

    Damage ends the dump where it is: what comes before it is printed, a warning names file,
    offset and seq, and the exit code is 1.
    """
    if stop is not None and stop < start:
        note(f"--to {stop} is before --from {start}: nothing to dump")
        return
    log = EventLog.open_readonly(resolve(directory).log)
    last: int | None = None
    try:
        for record in log.read(start):
            if stop is not None and record.seq > stop:
                break
            last = record.seq
            _print_record(describe(record.seq, record.payload, show_secrets=show_secrets), json)
            if record.seq == stop:
                _warn_tail_damage(log, stop)  # not one more read: it could be the damage
                return
    except CorruptLogError as err:
        warn(f"{err}; the dump above ends before it")
        raise typer.Exit(DAMAGE) from None
    if last is None and start > 1:
        note(f"the log holds no record from seq {start} on")
    elif stop is not None and (last or 0) < stop:
        note(f"the log ends at seq {last or 0}, before --to {stop}")


def _warn_tail_damage(log: EventLog, stop: int) -> None:
    """Damage past the range asked for does not stop the dump, but the operator must know."""
    try:
        _ = log.last_seq
    except CorruptLogError as err:
        warn(f"{err}; the records up to --to {stop} come before it and are intact")


def _print_record(row: dict[str, Any], json: bool) -> None:
    if json:
        emit_json(row)
    elif "hex" in row:
        print(f"{row['seq']:>10} {row['size']:>7}B  {row['hex']}")
    else:
        fields = msgspec.json.encode(row["event"]).decode()
        print(f"{row['seq']:>10} {row['size']:>7}B  {row['type']}  {fields}")


@app.command()
def stat(
    directory: DirArg,
    json: Annotated[bool, typer.Option("--json", help="One JSON object (see README).")] = False,
) -> None:
    """Segments, sizes, record counts and seq ranges; exit 1 on damage, like verify."""
    data_dir = resolve(directory)
    with RecordProgress("reading", log_end(data_dir)) as bar:
        report = verify_log(data_dir.log, on_record=_walker(None, bar.callback))
    if json:
        emit_json(_report_json(report, report.healthy))
    else:
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
        _print_damage(report)
        damaged = "" if report.healthy else "; DAMAGED (see above)"
        console.print(f"{report.records} records, {report.bytes} bytes{damaged}", markup=False)
    if not report.healthy:
        raise typer.Exit(DAMAGE)


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
