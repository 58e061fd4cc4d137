"""The stale-lock rule (``projections.locks.in_use`` / ``stale``), one rule for recovery, which
finds the stale locks, ``decide``, which releases only those, and the fold, which notes the
release of a lock still in use."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from projections import DomainError, decide, locks
from projections import commands as c
from projections.events import BatchPrepared, LockReleased, RepoCloneCompleted
from tests.projections.world import World


def _cloning() -> World:
    w = World().boot(repos=())
    w.do(c.RegisterRepo(repo="api", git_url="https://git.example/api.git", branch="main"))
    return w


def _preparing() -> World:
    w = World().boot()
    w.run_to_preparing("j1")
    return w


def _cloned_but_locked() -> World:
    """A clone that ended without its lock given back (only a hand-made history does that)."""
    w = _cloning()
    w.fold(RepoCloneCompleted(repo="api", commit="c0"))
    return w


def _prepared_but_locked() -> World:
    """A v1-style history: the batch prepared, its lock never given back."""
    w = _preparing()
    batch = w.state.batches.active[w.batch_of("j1")]
    w.fold(BatchPrepared(batch_id=batch.batch_id, commit="c1"))
    return w


@pytest.mark.parametrize(
    ("scene", "is_stale"),
    [
        (_cloning, False),
        (_preparing, False),
        (_cloned_but_locked, True),
        (_prepared_but_locked, True),
    ],
)
def test_stale_when_nothing_works_under_it(scene: Callable[[], World], is_stale: bool) -> None:
    w = scene()
    lock = w.state.locks.holder("api")
    assert lock is not None
    assert locks.in_use(w.state, lock) is not is_stale
    assert locks.stale(w.state) == (["api"] if is_stale else [])
    release = c.ReleaseStaleLock(repo="api")
    if is_stale:
        events = decide(w.state, release, w.now + 1)
        assert isinstance(events[0], LockReleased) and events[0].reason == "stale-after-restart"
    else:
        with pytest.raises(DomainError) as refused:
            decide(w.state, release, w.now + 1)
        assert refused.value.code == "lock_in_use"


def test_the_fold_notes_the_release_of_a_lock_in_use() -> None:
    w = _preparing()
    lock = w.state.locks.holder("api")
    assert lock is not None
    w.fold(LockReleased(repo="api", holder=lock.holder, generation=lock.generation, reason="x"))
    assert any("still works" in note for note in w.state.anomalies)


def test_no_lock_no_stale_lock() -> None:
    assert locks.stale(World().boot().state) == []
