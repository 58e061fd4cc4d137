"""`rewind bench log|replay|api|launch`: benchmarks, every figure with a same-run baseline."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from service.sandbox.host import SandboxUnavailableError
from tools import bench_api, bench_launch, bench_log, bench_replay
from tools.exits import ERROR
from tools.output import console, emit_json, fail

app = typer.Typer(no_args_is_help=True, help="Benchmarks with same-run baselines.")

ScratchOpt = Annotated[
    Path | None, typer.Option("--dir", help="Scratch directory on the disk to measure.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object.")]


@app.command("log")
def log(
    seconds: Annotated[
        float, typer.Option("--seconds", help="Total time per contender.", min=0.3)
    ] = 6.0,
    directory: ScratchOpt = None,
    json: JsonOpt = False,
) -> None:
    """Durable appends/s: rewind (64 and 1 writers) vs fsync loop, SQLite, atomic JSON files."""
    _run(lambda scratch: bench_log.run(seconds, scratch), directory, json, lambda _: [])


@app.command("replay")
def replay(
    events: Annotated[
        int,
        typer.Option(
            "--events", help="Events in the generated history.", min=bench_replay.SNAPSHOT_EVERY
        ),
    ] = bench_replay.DEFAULT_EVENTS,
    directory: ScratchOpt = None,
    json: JsonOpt = False,
) -> None:
    """Replay events/s and snapshot load time of rewind vs eventsourcing's SQLite recorder."""
    try:
        _run(
            lambda scratch: bench_replay.run(events, scratch),
            directory,
            json,
            bench_replay.target_lines,
        )
    except bench_replay.PeerMissingError as err:
        fail(str(err))
        raise typer.Exit(ERROR) from None


@app.command("api")
def api(
    seconds: Annotated[
        float,
        typer.Option("--seconds", help="Measured time per server (split in rounds).", min=0.2),
    ] = 10.0,
    clients: Annotated[
        int, typer.Option("--clients", help="Concurrent keep-alive connections.", min=1)
    ] = bench_api.DEFAULT_CLIENTS,
    rounds: Annotated[
        int, typer.Option("--rounds", help="Alternations of rewind and the baseline.", min=1)
    ] = bench_api.DEFAULT_ROUNDS,
    directory: ScratchOpt = None,
    json: JsonOpt = False,
) -> None:
    """Durable job creates/s of `rewind serve` vs a bare Litestar + EventLog endpoint."""
    try:
        _run(
            lambda scratch: bench_api.run(seconds, scratch, clients=clients, rounds=rounds),
            directory,
            json,
            bench_api.verdicts,
        )
    except bench_api.BenchError as err:
        fail(str(err))
        raise typer.Exit(ERROR) from None


@app.command("launch")
def launch(
    rounds: Annotated[
        int, typer.Option("--rounds", help="Launches per contender.", min=1)
    ] = bench_launch.DEFAULT_ROUNDS,
    directory: ScratchOpt = None,
    json: JsonOpt = False,
) -> None:
    """Launch-to-first-output p50/p99 of an agent: unconfined vs in the sandbox (issue 14)."""
    try:
        _run(
            lambda scratch: bench_launch.run(rounds, scratch),
            directory,
            json,
            bench_launch.verdicts,
        )
    except SandboxUnavailableError as err:
        fail(str(err))
        raise typer.Exit(ERROR) from None


def _run(
    measure: Callable[[Path], dict[str, Any]],
    directory: Path | None,
    json: bool,
    verdicts: Callable[[dict[str, Any]], list[str]],
) -> None:
    """Measure in a scratch directory on the chosen disk (default: here), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=".rewind-bench-", dir=directory or Path.cwd()) as tmp:
        result = measure(Path(tmp))
    if json:
        emit_json(result)
        return
    for name, value in result.items():
        shown = _shown(value)
        console.print(f"{name:<34} {shown:>14}", markup=False)
    for line in verdicts(result):
        console.print(line, markup=False)


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, list):
        return " ".join(_shown(item) for item in value)
    return str(value)
