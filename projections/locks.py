"""Repository locks: leases held by one job, each with a strictly increasing fencing generation.

Releasing is always an explicit ``lock.released`` written by the service, even when the holder
ended: a fold that released implicitly would hide exactly the bug (a lock outliving its job)
that the invariants exist to catch. Acquisitions that break the lease rules are applied as
written and remembered in ``conflicts`` for the checker.
"""

from __future__ import annotations

from typing import Final

import msgspec

from projections.envelope import Envelope
from projections.events import LockAcquired, LockReleased
from projections.handlers import Handlers

MAX_CONFLICTS: Final = 100
"""Only the first conflicts are kept: one is enough to fail a check, all would grow forever."""


class Lock(msgspec.Struct, frozen=True, array_like=True, gc=False):
    job_id: str
    generation: int
    seq: int


class Locks(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    held: dict[str, Lock] = msgspec.field(default_factory=dict)
    generations: dict[str, int] = msgspec.field(default_factory=dict)
    """repo -> highest generation ever granted, held or not."""
    conflicts: list[str] = msgspec.field(default_factory=list)

    def holder(self, repo: str) -> Lock | None:
        return self.held.get(repo)

    def held_by(self, job_id: str) -> list[str]:
        return [repo for repo, lock in self.held.items() if lock.job_id == job_id]

    def _conflict(self, message: str) -> None:
        if len(self.conflicts) < MAX_CONFLICTS:
            self.conflicts.append(message)

    def _acquired(self, seq: int, env: Envelope, ev: LockAcquired) -> None:
        current = self.held.get(ev.repo)
        if current is not None:
            self._conflict(
                f"seq {seq}: lock on {ev.repo!r} acquired by {ev.job_id!r} while held by "
                f"{current.job_id!r}"
            )
        last = self.generations.get(ev.repo, 0)
        if ev.generation <= last:
            self._conflict(
                f"seq {seq}: lock on {ev.repo!r} granted generation {ev.generation}, "
                f"not above {last}"
            )
        else:
            self.generations[ev.repo] = ev.generation
        self.held[ev.repo] = Lock(ev.job_id, ev.generation, seq)

    def _released(self, seq: int, env: Envelope, ev: LockReleased) -> None:
        current = self.held.get(ev.repo)
        if current is None or current.job_id != ev.job_id:
            holder = None if current is None else current.job_id
            self._conflict(
                f"seq {seq}: lock on {ev.repo!r} released by {ev.job_id!r}, holder is {holder!r}"
            )
            return
        del self.held[ev.repo]


HANDLERS: Handlers = {
    LockAcquired: Locks._acquired,
    LockReleased: Locks._released,
}
