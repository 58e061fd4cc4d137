"""Long simulated histories (``tools.simulation``, the one generator, driven through decide):
the rules hold all along, and the history is rich enough to mean something.

``REWIND_LONG_HISTORY`` raises the length (default 50 000 events per seed).
"""

from __future__ import annotations

import os
from collections import Counter
from itertools import islice
from typing import Final

import pytest

from projections import check, encode
from projections.events import EVENT_TYPES, EventRetired, tag_of
from projections.lifecycle import TERMINAL
from projections.state import State
from tools.simulation import Simulation, realistic_history

EVENTS: Final = int(os.environ.get("REWIND_LONG_HISTORY", "50000"))
CHECK_EVERY: Final = 1_000
SEEDS: Final = (1, 2, 3)


def _lock_holders_prepare(state: State) -> list[str]:
    """The members of a batch holding its repository's lock are preparing (or already
    finished): never back in some earlier status, as v1's folds had them."""
    problems = []
    for repo, lock in state.locks.held.items():
        if lock.kind != "prepare":
            continue
        for job_id in state.batches.active[lock.holder].job_ids:
            status = state.jobs.by_id[job_id].status
            if status != "preparing" and status not in TERMINAL:
                problems.append(f"{job_id} of the batch holding {repo} is {status}")
    return problems


@pytest.mark.parametrize("seed", SEEDS)
def test_a_long_history_keeps_every_rule_and_has_every_event_type(seed: int) -> None:
    simulation = Simulation(seed)
    seen: Counter[str] = Counter()
    for seq, envelope in enumerate(simulation.history(EVENTS), start=1):
        seen[tag_of(type(envelope.event))] += 1
        if seq % CHECK_EVERY == 0:
            assert check(simulation.state) == [], f"seed {seed}, seq {seq}"
            assert _lock_holders_prepare(simulation.state) == [], f"seed {seed}, seq {seq}"
    state = simulation.state
    assert state.last_seq >= EVENTS, "the last command's whole group is folded"
    assert check(state) == []
    missing = {tag_of(cls) for cls in EVENT_TYPES} - set(seen) - {tag_of(EventRetired)}
    assert missing == set(), f"seed {seed} never produced {sorted(missing)}"
    assert tag_of(EventRetired) not in seen, "only upcasters retire events"
    assert seen["job.created"] >= EVENTS // 50, "jobs are the history's substance"
    assert len(state.server.crash_seqs) >= 1 and state.server.boots >= 3


def test_the_same_seed_gives_the_same_history_and_another_seed_another() -> None:
    def payloads(seed: int) -> list[bytes]:
        return [encode(envelope) for envelope in islice(realistic_history(5_000, seed), 5_000)]

    first = payloads(7)
    assert len(first) == 5_000
    assert payloads(7) == first
    assert payloads(8) != first


def test_retention_keeps_the_state_bounded() -> None:
    """Deleted jobs are purged as retention allows: the state holds the recent jobs, not
    every job ever created."""
    simulation = Simulation(4)
    for _ in simulation.history(EVENTS):
        pass
    jobs = simulation.state.jobs
    created = len(jobs.by_id) + len(jobs.purged)
    assert len(jobs.purged) > created // 2, (len(jobs.by_id), len(jobs.purged))
