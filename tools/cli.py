"""The `rewind` command. Errors are one readable line on stderr and a non-zero exit."""

from __future__ import annotations

import sys

import msgspec
import typer

from eventlog import LogError
from projections import ProjectionError
from service.config import ConfigError
from tools import (
    bench_commands,
    crashes_command,
    log_commands,
    serve_command,
    simulate_command,
    state_commands,
)
from tools.output import fail

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="rewind: a crash-proof batch server for coding agents, built on an event log.",
)
app.add_typer(log_commands.app, name="log")
app.add_typer(state_commands.history_app, name="history")
app.add_typer(bench_commands.app, name="bench")
app.command("state")(state_commands.state)
app.command("snapshot")(state_commands.snapshot)
app.command("simulate")(simulate_command.simulate)
app.command("serve")(serve_command.serve)
app.command("crashes")(crashes_command.crashes)


def main() -> None:
    """Entry point: domain errors become one line on stderr, never a traceback.

    Usage errors are click's own (usage, hint, one `Error:` line), printed without rich panels.
    """
    try:
        app()
    except (LogError, ProjectionError, ConfigError, OSError, msgspec.MsgspecError) as err:
        fail(str(err))
        sys.exit(2)
