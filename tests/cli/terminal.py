"""Running the real `rewind` with stderr on a pseudo-terminal, as an operator's shell does.

Progress bars are drawn only for a terminal, so tests that check them need one: a pty whose
other end this process reads. stdout stays a pipe, the way `rewind ... > file` is run.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import threading
from pathlib import Path
from typing import NamedTuple

from tests.service.helpers import REWIND, ROOT

_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_RICH_OVERRIDES = ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS")


class TerminalRun(NamedTuple):
    returncode: int
    stdout: str
    terminal: str
    """Everything written to the terminal (stderr), control sequences included."""

    @property
    def text(self) -> str:
        """The terminal's output without colours and cursor moves."""
        return _CONTROL.sub("", self.terminal)


def run_on_terminal(*args: str | Path | int, timeout: float = 120) -> TerminalRun:
    controller, device = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in _RICH_OVERRIDES}
    env.update(TERM="xterm-256color", COLUMNS="160", LINES="40")
    try:
        process = subprocess.Popen(
            [str(REWIND), *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=device,
            cwd=ROOT,
            env=env,
        )
    finally:
        os.close(device)
    seen = bytearray()
    reader = threading.Thread(target=_drain, args=(controller, seen), daemon=True)
    reader.start()
    try:
        stdout, _ = process.communicate(timeout=timeout)
    finally:
        reader.join(timeout=10)
        os.close(controller)
    return TerminalRun(process.returncode, stdout.decode(), seen.decode(errors="replace"))


def _drain(controller: int, into: bytearray) -> None:
    """Read the terminal until its last writer is gone (Linux then reports EIO)."""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:
            return
        if not chunk:
            return
        into.extend(chunk)
