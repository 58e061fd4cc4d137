"""When to snapshot, and how without stalling writers.

Policy (DESIGN.md): every `every` events, at clean shutdown, and on `rewind snapshot`; the store
keeps the newest three. The state is encoded on the event loop (a consistent view, and the only
part that must not overlap with folding new events); the file is written and fsynced on a worker
thread, so appends wait at most for the encoding.
"""

from __future__ import annotations

from pathlib import Path

import anyio

from eventlog import Checkpoint, SnapshotStore
from projections import State, encode_state
from service.layout import DataDir
from service.state_store import snapshot_store

DEFAULT_EVERY = 10_000


class Snapshotter:
    def __init__(self, data_dir: DataDir, every: int = DEFAULT_EVERY, last_seq: int = 0) -> None:
        self.every = every
        self.last_seq = last_seq
        """Seq of the newest snapshot taken (or loaded at startup)."""
        self._store: SnapshotStore = snapshot_store(data_dir)
        self._writing = False

    def due(self, state: State) -> bool:
        return not self._writing and state.last_seq - self.last_seq >= self.every

    async def take(self, state: State, checkpoint: Checkpoint | None) -> Path | None:
        """Snapshot `state`; `checkpoint` must be the log's position of `state.last_seq`.

        Raises LostRecordsError, writing nothing, if a valid snapshot of a later seq exists:
        the log has lost records that one covered (never renamed away and skipped).
        """
        if state.last_seq in (0, self.last_seq):
            return None
        if checkpoint is not None and checkpoint.seq != state.last_seq:
            raise ValueError(
                f"checkpoint of seq {checkpoint.seq} does not match state at {state.last_seq}"
            )
        data = encode_state(state)
        seq = state.last_seq
        self._writing = True
        try:
            path = await anyio.to_thread.run_sync(self._store.write, seq, data, checkpoint)
        finally:
            self._writing = False
        self.last_seq = seq
        return path
