"""Repository locks: leases with a strictly increasing fencing generation per repository.

A lock is held by a batch preparing the repository (kind prepare) or by its clone (kind
clone); ``batch.formed`` and ``repo.clone-started`` take it, ``lock.released`` gives it back.
The generation lets an effect started under an old lease be told apart from the current one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from projections.envelope import Envelope
from projections.events import LockKind, LockReleased
from projections.handlers import Handlers

if TYPE_CHECKING:
    from projections.state import State


class Lock(msgspec.Struct, frozen=True, array_like=True, gc=False):
    holder: str
    kind: LockKind
    generation: int
    seq: int
    lease_expires_at: float


class Locks(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    held: dict[str, Lock] = msgspec.field(default_factory=dict)
    generations: dict[str, int] = msgspec.field(default_factory=dict)
    """repo -> highest generation ever granted, held or not."""

    def holder(self, repo: str) -> Lock | None:
        return self.held.get(repo)

    def next_generation(self, repo: str) -> int:
        return self.generations.get(repo, 0) + 1


def acquire(
    state: State,
    seq: int,
    *,
    repo: str,
    holder: str,
    kind: LockKind,
    generation: int,
    lease_expires_at: float,
) -> None:
    """Shared by the events that take a lock as part of their fact."""
    locks = state.locks
    current = locks.held.get(repo)
    if current is not None:
        state.note(
            f"seq {seq}: lock on {repo!r} taken by {holder!r} while held by {current.holder!r}"
        )
    last = locks.generations.get(repo, 0)
    if generation <= last:
        state.note(f"seq {seq}: lock on {repo!r} granted generation {generation}, not above {last}")
    locks.generations[repo] = max(last, generation)
    locks.held[repo] = Lock(holder, kind, generation, seq, lease_expires_at)


def _released(state: State, seq: int, env: Envelope, ev: LockReleased) -> None:
    current = state.locks.held.get(ev.repo)
    if current is None or (current.holder, current.generation) != (ev.holder, ev.generation):
        held = None if current is None else (current.holder, current.generation)
        state.note(
            f"seq {seq}: lock on {ev.repo!r} released by {(ev.holder, ev.generation)}, "
            f"held by {held}"
        )
        return
    if in_use(state, current):
        state.note(f"seq {seq}: lock on {ev.repo!r} released while {current.holder!r} still works")
    del state.locks.held[ev.repo]


def in_use(state: State, lock: Lock) -> bool:
    """Whether the lock's holder still works under it: a clone still cloning, a batch still
    preparing. The one rule of a lock's staleness: the fold notes a release of a lock in use
    as an anomaly, ``decide`` refuses to release it as stale, recovery looks for the others."""
    if lock.kind == "clone":
        repo = state.repos.by_name.get(lock.holder)
        return repo is not None and repo.clone == "cloning"
    batch = state.batches.active.get(lock.holder)
    return batch is not None and batch.phase == "preparing"


def stale(state: State) -> list[str]:
    """The repositories whose lock nothing works under any more (an old or damaged history
    can leave one): recovery releases them with ``ReleaseStaleLock``."""
    return [repo for repo, lock in state.locks.held.items() if not in_use(state, lock)]


HANDLERS: Handlers = {LockReleased: _released}
