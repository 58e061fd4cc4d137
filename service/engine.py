"""The single writer: command -> decide -> one durable group in the log -> answer.

Decide and evolve run back to back with no await between them, so on the one event loop the
commands are totally ordered and each is decided on the state its predecessors made. The
events are folded into the in-memory state at once and their group is submitted to the log in
the same order; the caller is answered only when that group is durable. Many commands can be
waiting on the disk at once, so they share fsyncs (group commit) instead of queueing behind it.

The state can therefore briefly run ahead of the disk. Nothing that leaves the process may
depend on that part: a reader's answer and an effect's start first ``await settled()``, which
returns once everything applied so far is durable. A command that acts on what it read is
itself durable only after everything before it in the log.

A failed append means the log can no longer be trusted (see ``LogFailedError``): the state may
hold events that will never be durable, so the engine refuses every later command until a
restart replays what the disk really holds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import anyio

from eventlog import MAX_PAYLOAD, EventLog, LogError
from projections import Command, Envelope, Event, State, decide, decode, encode, evolve, make
from projections.errors import invalid
from service.metrics import Metrics


class EngineFailedError(RuntimeError):
    """The log failed under the engine; nothing more is acknowledged until a restart."""


class Engine:
    def __init__(
        self, log: EventLog, state: State, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.log = log
        self.state = state
        self.clock = clock
        self.metrics = Metrics()
        self.failure: BaseException | None = None
        self._last_append: asyncio.Future[int] | None = None
        self._changed: asyncio.Event | None = None
        self.version = 0
        """Counts the commands that changed the state; a waiter compares it to what it saw."""
        self._next_seq = state.last_seq + 1

    async def execute(
        self, command: Command, *, actor: str = "system", request: str | None = None
    ) -> list[Event]:
        """Decide ``command`` now and return its events once they are durable (and with no
        events, once everything it was decided on is durable).

        Raises ``DomainError`` (nothing happened), ``EngineFailedError`` (the log failed:
        the outcome of this and every pending command is unknown).
        """
        if self.failure is not None:
            raise EngineFailedError(f"the log failed: {self.failure}")
        now = self.clock()
        events = decide(self.state, command, now)
        if not events:
            await self.settled()  # nothing to write, but the answer rests on what was read
            return events
        envelopes = [make(event, ts=now, actor=actor, request=request) for event in events]
        payloads = [encode(envelope) for envelope in envelopes]
        if any(len(payload) > MAX_PAYLOAD for payload in payloads):
            raise invalid("too_large", f"the command's events exceed {MAX_PAYLOAD} bytes")
        first = self._next_seq
        for offset, envelope in enumerate(envelopes):
            evolve(self.state, first + offset, envelope)
        self._next_seq = first + len(envelopes)
        try:
            append = self.log.submit_many(payloads)
        except LogError as err:  # already applied: the state is ahead of a log that is gone
            self.failure = err
            raise EngineFailedError(f"the log failed: {err}") from err
        self._last_append = append
        self.version += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = None
        started = time.perf_counter()
        try:
            seq = await asyncio.shield(append)
        except LogError as err:
            self.failure = err
            raise EngineFailedError(f"the log failed: {err}") from err
        if seq != first:
            self.failure = RuntimeError(f"log gave seq {seq} where {first} was applied")
            raise EngineFailedError(str(self.failure))
        self.metrics.observe_commit(time.perf_counter() - started, len(events))
        return events

    async def settled(self) -> None:
        """Return once every event applied so far is durable (or raise if it never will be).

        Checked again after each wait: other commands may have applied events while this one
        waited, and the caller reads the state the moment this returns."""
        if self.failure is not None:
            raise EngineFailedError(f"the log failed: {self.failure}")
        while (pending := self._last_append) is not None and not pending.done():
            try:
                await asyncio.shield(pending)
            except LogError as err:
                raise EngineFailedError(f"the log failed: {err}") from err

    async def wait_change(self, timeout: float, since: int | None = None) -> None:
        """Sleep until the state changes or ``timeout`` passes, whichever comes first; with
        ``since`` (a ``version`` seen earlier), return at once if it has changed already."""
        if since is not None and since != self.version:
            return
        if self._changed is None:
            self._changed = asyncio.Event()
        with anyio.move_on_after(timeout):
            await self._changed.wait()

    def history(self, seqs: list[int]) -> list[tuple[int, Envelope]]:
        """The events at these seqs, read back from the log (durable ones only)."""
        wanted = set(seqs)
        found: list[tuple[int, Envelope]] = []
        if not seqs:
            return found
        last = max(seqs)
        for record in self.log.read(min(seqs)):
            if record.seq > last:
                break
            if record.seq in wanted:
                found.append((record.seq, decode(record.payload)))
        return found
