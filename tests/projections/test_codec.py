"""Snapshots: the state codec is exact, versioned and deterministic across processes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from projections import (
    STATE_VERSION,
    ProjectionError,
    State,
    StateVersionError,
    check,
    decode,
    decode_state,
    encode,
    encode_state,
    evolve,
)
from tools.simulation import realistic_history

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 30_000


@pytest.fixture(scope="module")
def payloads() -> list[bytes]:
    return [encode(env) for env in realistic_history(EVENTS, seed=7)]


def _replay(payloads: list[bytes], state: State | None = None, start: int = 0) -> State:
    state = State() if state is None else state
    for seq, payload in enumerate(payloads[start:], start=start + 1):
        evolve(state, seq, decode(payload))
    return state


def test_realistic_history_keeps_every_invariant(payloads: list[bytes]) -> None:
    state = State()
    for seq, payload in enumerate(payloads, start=1):
        evolve(state, seq, decode(payload))
        if seq % 250 == 0:
            assert check(state) == [], seq
    assert check(state) == []
    assert state.stats.outcomes.get("completed"), "the history should complete jobs"
    assert state.server.boots >= 1


def test_realistic_history_is_seeded() -> None:
    assert list(realistic_history(2000, seed=1)) == list(realistic_history(2000, seed=1))
    assert list(realistic_history(2000, seed=1)) != list(realistic_history(2000, seed=2))
    assert len(list(realistic_history(123, seed=1))) == 123


def test_state_round_trips_exactly(payloads: list[bytes]) -> None:
    state = _replay(payloads)
    restored = decode_state(encode_state(state))
    assert restored == state
    assert encode_state(restored) == encode_state(state)


@pytest.mark.parametrize("k", [0, 1, 977, 10_000, 18_311, EVENTS])
def test_snapshot_plus_tail_equals_full_replay(payloads: list[bytes], k: int) -> None:
    snapshot = encode_state(_replay(payloads[:k]))
    resumed = _replay(payloads, decode_state(snapshot), start=k)
    assert encode_state(resumed) == encode_state(_replay(payloads))


def test_same_events_same_bytes(payloads: list[bytes]) -> None:
    assert encode_state(_replay(payloads)) == encode_state(_replay(payloads))


_CHILD = """
import hashlib, sys
from projections import State, encode_state, evolve
from tools.simulation import realistic_history
state = State()
for seq, env in enumerate(realistic_history(int(sys.argv[1]), seed=7), start=1):
    evolve(state, seq, env)
print(hashlib.sha256(encode_state(state)).hexdigest())
"""


def test_same_bytes_across_processes_and_hash_seeds(payloads: list[bytes]) -> None:
    here = hashlib.sha256(encode_state(_replay(payloads))).hexdigest()
    for hash_seed in ("1", "2", "12345"):
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, str(EVENTS)],
            env={**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        assert child.stdout.strip() == here, hash_seed


def test_other_state_version_is_refused() -> None:
    data = msgspec.msgpack.encode([STATE_VERSION + 1, []])
    with pytest.raises(StateVersionError, match=f"version {STATE_VERSION + 1}"):
        decode_state(data)


def test_damaged_state_is_a_projection_error() -> None:
    data = encode_state(State())
    with pytest.raises(ProjectionError):
        decode_state(data[:-3])
    with pytest.raises(ProjectionError):
        decode_state(msgspec.msgpack.encode([STATE_VERSION, [1, 2, 3]]))
