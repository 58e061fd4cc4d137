"""The server's own history: boots, clean stops, crashes, recoveries and snapshots.

A ``server.started`` while the previous boot never wrote ``server.stopping`` is a crash.
"""

from __future__ import annotations

import msgspec

from projections.envelope import Envelope
from projections.events import (
    RecoveryCompleted,
    RecoveryMetrics,
    ServerStarted,
    ServerStopping,
    SnapshotTaken,
)
from projections.handlers import Handlers


class Lifecycle(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    boot: ServerStarted | None = None
    boot_seq: int | None = None
    up: bool = False
    boots: int = 0
    crashes: int = 0
    crash_seqs: list[int] = msgspec.field(default_factory=list)
    """Seq of each ``server.started`` that followed a crash (``rewind crashes`` lists them)."""
    last_recovery: RecoveryMetrics | None = None
    last_snapshot: SnapshotTaken | None = None

    def _started(self, seq: int, env: Envelope, ev: ServerStarted) -> None:
        if self.up:
            self.crashes += 1
            self.crash_seqs.append(seq)
        self.boot = ev
        self.boot_seq = seq
        self.up = True
        self.boots += 1

    def _stopping(self, seq: int, env: Envelope, ev: ServerStopping) -> None:
        self.up = False

    def _recovered(self, seq: int, env: Envelope, ev: RecoveryCompleted) -> None:
        self.last_recovery = ev.metrics

    def _snapshot(self, seq: int, env: Envelope, ev: SnapshotTaken) -> None:
        self.last_snapshot = ev


HANDLERS: Handlers = {
    ServerStarted: Lifecycle._started,
    ServerStopping: Lifecycle._stopping,
    RecoveryCompleted: Lifecycle._recovered,
    SnapshotTaken: Lifecycle._snapshot,
}
