"""Random valid histories: invariants hold after every event, and a snapshot at any k followed by
the replay of the rest gives exactly the bytes of a full replay."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from projections import Envelope, State, check, decode, decode_state, encode, encode_state, evolve
from projections.envelope import make
from projections.events import Event
from tests.projections.model import REPOS, Model


def replay(payloads: list[bytes], state: State | None = None, start: int = 0) -> State:
    state = State() if state is None else state
    for seq, payload in enumerate(payloads[start:], start=start + 1):
        evolve(state, seq, decode(payload))
    return state


class History(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.state = State()
        self.payloads: list[bytes] = []
        self.ts = 1_700_000_000.0
        self.apply(self.model.start_server(clean=False))
        for repo in REPOS:
            self.apply(self.model.register(repo))

    def apply(self, events: list[Event]) -> None:
        """Append through the real codec and check the invariants after every single event."""
        for event in events:
            self.ts += 0.25
            payload = encode(make(event, ts=self.ts, actor="system"))
            self.payloads.append(payload)
            envelope: Envelope = decode(payload)
            evolve(self.state, len(self.payloads), envelope)
            problems = check(self.state)
            assert problems == [], (len(self.payloads), event, problems)

    @rule(repos=st.lists(st.integers(0, 3), min_size=1, max_size=4), with_hook=st.booleans())
    def create(self, repos: list[int], with_hook: bool) -> None:
        for repo_index in repos:
            self.apply(self.model.create(repo_index, with_hook))

    @rule(join=st.booleans())
    def dispatch(self, join: bool) -> None:
        self.apply(self.model.dispatch(join))

    @rule(repo_index=st.integers(0, 3), with_container=st.booleans())
    def prepared(self, repo_index: int, with_container: bool) -> None:
        self.apply(self.model.prepared(repo_index, with_container))

    @rule(index=st.integers(0, 10), outcome=st.integers(0, 3))
    def finish(self, index: int, outcome: int) -> None:
        self.apply(self.model.finish(index, outcome))

    @rule(roll=st.integers(0, 3))
    def cancel(self, roll: int) -> None:
        """Rarer than the other commands, so that jobs get far enough to matter."""
        if roll == 0:
            self.apply(self.model.cancel())

    @rule()
    def callback_attempt(self) -> None:
        self.apply(self.model.callback_attempt())

    @rule(success=st.booleans())
    def callback_outcome(self, success: bool) -> None:
        self.apply(self.model.callback_outcome(success))

    @rule(success=st.booleans())
    def cleanup(self, success: bool) -> None:
        self.apply(self.model.cleanup(success))

    @rule()
    def remove_container(self) -> None:
        self.apply(self.model.remove_container())

    @rule()
    def delete(self) -> None:
        self.apply(self.model.delete())

    @rule(clean=st.booleans(), roll=st.integers(0, 5))
    def restart(self, clean: bool, roll: int) -> None:
        if roll == 0:
            self.apply(self.model.start_server(clean))

    @rule(k=st.integers(min_value=0))
    def snapshot_then_replay_equals_full_replay(self, k: int) -> None:
        k %= len(self.payloads) + 1
        snapshot = encode_state(replay(self.payloads[:k]))
        resumed = replay(self.payloads, decode_state(snapshot), start=k)
        full = encode_state(replay(self.payloads))
        assert encode_state(resumed) == full
        assert full == encode_state(self.state)

    @invariant()
    def model_agrees_with_the_queries(self) -> None:
        assert list(self.state.queue.entries) == self.model.queued
        for repo in REPOS:
            assert self.state.waits.waiters(repo) == self.model.waiting[repo]
            holder = self.state.locks.holder(repo)
            expected = self.model.holder.get(repo)
            assert (holder.job_id if holder else None) == (expected[0] if expected else None)
        assert list(self.state.jobs.running) == self.model.running
        assert sorted(self.state.callbacks.pending) == sorted(self.model.callbacks)
        assert [c.spec.path for c in self.state.cleanup.pending_cleanups()] == self.model.cleanups


TestHistory = History.TestCase
TestHistory.settings = settings(
    max_examples=120,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
