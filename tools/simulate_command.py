"""`rewind simulate`: fill a data directory with a realistic, valid server history.

For trying the tools (and the crash behaviour) before a server has run: the events come from
the same seeded generator the tests and benchmarks use, appended through the real log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Annotated

import typer

from eventlog import EventLog, LogError
from projections import encode
from service.layout import DataDir, resolve_new
from tools.output import console
from tools.progress import RecordProgress
from tools.simulation import realistic_history

CHUNK = 256
"""Appends in flight at once: concurrent, so they share fsyncs, and in order, so seq follows."""


def simulate(
    directory: Annotated[
        Path, typer.Argument(help="Data directory, or its log/ directory (created if missing).")
    ],
    events: Annotated[int, typer.Option("--events", help="How many events.", min=1)] = 20_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated history.")] = 1,
) -> None:
    """Append a generated history (jobs, locks, batches, callbacks, cleanups) to a new log."""
    data_dir = resolve_new(directory)
    with RecordProgress("appending", events) as bar:
        last = asyncio.run(_append(data_dir, events, seed, bar.callback))
    console.print(f"appended {events} events to {data_dir.log}; last seq {last}", markup=False)


async def _append(
    data_dir: DataDir, events: int, seed: int, tick: Callable[[int], None] | None
) -> int:
    log = EventLog.open(data_dir.log)
    try:
        if log.last_seq:
            raise LogError(
                f"{data_dir.log} already holds {log.last_seq} events; simulate into a new directory"
            )
        history = (encode(envelope) for envelope in realistic_history(events, seed))
        while chunk := list(islice(history, CHUNK)):
            await asyncio.gather(*(log.append(payload) for payload in chunk))
            if tick is not None:
                tick(log.last_seq)
        return log.last_seq
    finally:
        log.close()
