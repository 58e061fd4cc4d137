"""The CLI's exit codes, in one place: `rewind --help` and the README quote them."""

from __future__ import annotations

from typing import Final

OK: Final = 0
DAMAGE: Final = 1
"""Damage found: a corrupt record, an event this build cannot decode, a failed invariant."""
ERROR: Final = 2
"""Usage error (click's own code) or an operational one: no log there, locked, I/O error."""
CLOSED_PIPE: Final = 141
"""stdout was closed early (`| head`): 128 + SIGPIPE, what a shell reports for `cat`."""

HELP: Final = (
    "Exit codes: 0 ok; 1 damage found (a corrupt record, an undecodable event, a failed "
    "invariant); 2 usage or operational error; 141 output closed early (e.g. `| head`). "
    "Errors are one line on stderr."
)


class DamageFoundError(Exception):
    """Damage a command met after doing what was still possible; exits DAMAGE."""
