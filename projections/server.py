"""The server's own history: its id, the settings in force, boots, crashes and recoveries.

A ``server.started`` while the previous boot never wrote ``server.stopping`` is a crash. The
settings rules depend on (max concurrency, timeouts, agents) are recorded facts, so time travel
and the invariants judge any past seq by the settings in force at that seq.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import msgspec

from projections.envelope import Envelope
from projections.events import (
    RecoveryCompleted,
    RecoveryReport,
    ServerConfigured,
    ServerInitialized,
    ServerSettings,
    ServerStarted,
    ServerStopping,
    SnapshotTaken,
)
from projections.handlers import Handlers

if TYPE_CHECKING:
    from projections.state import State

KEEP_RECOVERIES: Final = 10


class Server(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    server_id: str | None = None
    settings: ServerSettings = msgspec.field(default_factory=ServerSettings)
    boot: ServerStarted | None = None
    boot_seq: int | None = None
    up: bool = False
    recovering: bool = False
    """Between this boot's ``server.started`` and its ``recovery.completed``."""
    boots: int = 0
    crash_seqs: list[int] = msgspec.field(default_factory=list)
    """Seq of each ``server.started`` that followed a crash (``rewind crashes`` lists them)."""
    recoveries: list[tuple[int, RecoveryReport]] = msgspec.field(default_factory=list)
    """The latest ``KEEP_RECOVERIES`` reports with their seqs, oldest first."""
    last_snapshot: SnapshotTaken | None = None


def _initialized(state: State, seq: int, env: Envelope, ev: ServerInitialized) -> None:
    if state.server.server_id is not None:
        state.note(f"seq {seq}: server initialized twice")
    state.server.server_id = ev.server_id


def _configured(state: State, seq: int, env: Envelope, ev: ServerConfigured) -> None:
    state.server.settings = ev.settings


def _started(state: State, seq: int, env: Envelope, ev: ServerStarted) -> None:
    server = state.server
    if server.up:
        server.crash_seqs.append(seq)
    server.boot = ev
    server.boot_seq = seq
    server.up = True
    server.recovering = True
    server.boots += 1


def _stopping(state: State, seq: int, env: Envelope, ev: ServerStopping) -> None:
    state.server.up = False


def _recovered(state: State, seq: int, env: Envelope, ev: RecoveryCompleted) -> None:
    server = state.server
    if not server.recovering:
        state.note(f"seq {seq}: recovery completed outside a recovery")
    server.recovering = False
    server.recoveries.append((seq, ev.report))
    del server.recoveries[:-KEEP_RECOVERIES]


def _snapshot(state: State, seq: int, env: Envelope, ev: SnapshotTaken) -> None:
    state.server.last_snapshot = ev


HANDLERS: Handlers = {
    ServerInitialized: _initialized,
    ServerConfigured: _configured,
    ServerStarted: _started,
    ServerStopping: _stopping,
    RecoveryCompleted: _recovered,
    SnapshotTaken: _snapshot,
}
