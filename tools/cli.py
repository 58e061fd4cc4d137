"""The `rewind` command. Errors are one readable line on stderr; exit codes in tools/exits.py."""

from __future__ import annotations

import os
import sys

import msgspec
import typer

from eventlog import CorruptLogError, LogError
from projections import ProjectionError
from service.config import ConfigError
from service.state_store import EventError
from tools import (
    bench_commands,
    crashes_command,
    exits,
    log_commands,
    serve_command,
    simulate_command,
    state_commands,
)
from tools.output import OutputClosedError, fail, guard_stdout

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="rewind: a crash-proof batch server for coding agents, built on an event log.",
    epilog=exits.HELP,
)
app.command("state")(state_commands.state)
app.command("snapshot")(state_commands.snapshot)
app.command("simulate")(simulate_command.simulate)
app.command("serve")(serve_command.serve)
app.command("crashes")(crashes_command.crashes)
for _name, _group in (
    ("log", log_commands.app),
    ("history", state_commands.history_app),
    ("bench", bench_commands.app),
):
    app.add_typer(_group, name=_name, epilog=exits.HELP)
    for _command in _group.registered_commands:  # every `--help` quotes the exit codes
        _command.epilog = exits.HELP
for _command in app.registered_commands:
    _command.epilog = exits.HELP

_DAMAGE = (CorruptLogError, EventError, exits.DamageFoundError)
_OPERATIONAL = (LogError, ProjectionError, ConfigError, OSError, msgspec.MsgspecError)


def main() -> None:
    """Entry point: every failure becomes an exit code and at most one line on stderr.

    Typer's click runs in non-standalone mode so that this function, not click, decides the
    codes: click would report a closed stdout as exit 1, which here means "damage found".
    """
    guard_stdout()
    try:
        code = app(standalone_mode=False)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at interpreter exit
    except OutputClosedError:
        code = _closed_pipe()
    except typer.TyperException as err:  # usage: click's own message (usage line, hint, error)
        _show_usage_error(err)
        code = exits.ERROR
    except typer.Abort:
        fail("aborted")
        code = exits.ERROR
    except _DAMAGE as err:
        fail(str(err))
        code = exits.DAMAGE
    except _OPERATIONAL as err:
        fail(str(err))
        code = exits.ERROR
    sys.exit(code if isinstance(code, int) else exits.OK)


def _show_usage_error(err: typer.TyperException) -> None:
    """Typer's (vendored click's) usage errors know how to print themselves: usage line, hint,
    `Error:` line, or the help itself when a group is called without a command."""
    show = getattr(err, "show", None)
    if show is not None:
        show()
    else:
        fail(err.format_message())


def _closed_pipe() -> int:
    """The reader of stdout went away (`| head`): stop quietly.

    Whatever is still buffered for stdout can never be written; pointing the descriptor at
    /dev/null lets the interpreter's final flush succeed instead of printing "Exception ignored".
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return exits.CLOSED_PIPE
