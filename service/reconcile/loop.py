"""Running a reconciler: a pass whenever the state changes (or every few seconds), each pass
only after everything it can see is durable, so no effect ever precedes its intent on disk."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio

from projections import Command, DomainError, Event
from service.engine import EngineFailedError
from service.runtime import Runtime

log = logging.getLogger("rewind")

Pass = Callable[[Runtime], Awaitable[None]]
COALESCE = 0.02
"""Seconds between the starts of two passes of one reconciler, at the least."""


async def run_forever(rt: Runtime, name: str, one_pass: Pass, every: float | None = None) -> None:
    """Passes of ``one_pass`` for ever: on every change of the state (at least each
    ``reconcile_interval``), or, with ``every``, on that fixed period (for the sweeps whose
    pass costs a walk over the whole state or a Docker API call).

    Passes are at least ``COALESCE`` apart: under a burst of commands one pass sees many
    changes, instead of every reconciler waking for every command."""
    while True:
        started = anyio.current_time()
        seen = rt.engine.version
        try:
            await rt.engine.settled()
            await one_pass(rt)
        except EngineFailedError:
            log.error("%s stops: the log failed and nothing more can be recorded", name)
            return
        except Exception:
            log.exception("%s pass failed; retrying", name)
        if every is None:
            await anyio.sleep(max(0.0, started + COALESCE - anyio.current_time()))
            await rt.engine.wait_change(rt.config.reconcile_interval, since=seen)
        else:
            await anyio.sleep(every)


async def record(rt: Runtime, command: Command) -> list[Event] | None:
    """Execute an outcome; a refusal means the state moved on meanwhile (a job cancelled
    while its launch ran, ...), which the next pass sees: it is logged, not raised."""
    try:
        return await rt.engine.execute(command)
    except DomainError as err:
        log.info("%s refused (%s): %s", type(command).__name__, err.code, err.message)
        return None
