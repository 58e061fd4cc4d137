"""The `rewind` command. Errors are one readable line on stderr and a non-zero exit."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from eventlog import LogError
from projections import ProjectionError
from tools import bench_log, bench_replay, log_commands, simulate_command, state_commands
from tools.output import console, emit_json, fail

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="rewind: a crash-proof batch server for coding agents, built on an event log.",
)
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks with same-run baselines.")
app.add_typer(log_commands.app, name="log")
app.add_typer(state_commands.history_app, name="history")
app.add_typer(bench_app, name="bench")
app.command("state")(state_commands.state)
app.command("snapshot")(state_commands.snapshot)
app.command("simulate")(simulate_command.simulate)


@bench_app.command("log")
def bench_log_command(
    seconds: Annotated[
        float, typer.Option("--seconds", help="Total time per contender.", min=0.3)
    ] = 6.0,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Scratch directory on the disk to measure.")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Durable appends/s: rewind (64 and 1 writers) vs fsync loop, SQLite, atomic JSON files."""
    scratch = directory or Path.cwd()
    with tempfile.TemporaryDirectory(prefix=".rewind-bench-", dir=scratch) as tmp:
        result = bench_log.run(seconds, Path(tmp))
    if json:
        emit_json(result)
        return
    for name, value in result.items():
        console.print(f"{name:<34} {value:>14,}", markup=False)


@bench_app.command("replay")
def bench_replay_command(
    events: Annotated[
        int,
        typer.Option(
            "--events", help="Events in the generated history.", min=bench_replay.SNAPSHOT_EVERY
        ),
    ] = bench_replay.DEFAULT_EVENTS,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Scratch directory on the disk to measure.")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Replay events/s and snapshot load time of rewind vs eventsourcing's SQLite recorder."""
    scratch = directory or Path.cwd()
    with tempfile.TemporaryDirectory(prefix=".rewind-bench-", dir=scratch) as tmp:
        result = bench_replay.run(events, Path(tmp))
    if json:
        emit_json(result)
        return
    for name, value in result.items():
        shown = "-" if value is None else f"{value:,}"
        console.print(f"{name:<34} {shown:>14}", markup=False)
    for line in bench_replay.target_lines(result):
        console.print(line, markup=False)


def main() -> None:
    """Entry point: domain errors become one line on stderr, never a traceback.

    Usage errors are click's own (usage, hint, one `Error:` line), printed without rich panels.
    """
    try:
        app()
    except (LogError, ProjectionError, OSError, msgspec.MsgspecError) as err:
        fail(str(err))
        sys.exit(2)
