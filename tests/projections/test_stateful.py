"""A hypothesis state machine over the domain: random commands, valid and invalid, through
``decide`` and ``evolve``, every event through the real codec.

The valid commands come from ``tools.simulation.Simulation``'s own actions (hypothesis picks
which action runs; the simulation's seeded generator fills in the details), so the machine
explores orders the weighted simulation rarely takes. Beside them:

- ``refused``: commands built to be illegal (unknown ids, wrong statuses, stale generations,
  duplicates, an idempotency key reused with another body, ...), each with the code it must
  be refused with; the state must not change by a single byte;
- ``anything``: a command of any type with ids drawn from the state (or unknown) and random
  fields, which decide may accept or refuse, but whatever it accepts must keep every rule;
- ``snapshot_at_k``: a snapshot of the state at a random seq k, through the real state codec,
  plus the replay of the rest equals the live state, and so does a replay from nothing.

After every step ``check(state)`` is empty.

Deliberately broken variants of decide (FIFO dispatch, ``max_concurrent``, one terminal
transition per job, FIFO lock hand-off) are each caught by this machine: see the end.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any, Final, Literal

import msgspec
import pytest
from hypothesis import HealthCheck, Phase, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from msgspec.structs import replace

from projections import (
    DomainError,
    Envelope,
    Event,
    State,
    check,
    decide,
    decode,
    decode_state,
    encode,
    encode_state,
    evolve,
    make,
)
from projections import commands as c
from projections.decide import DECIDERS, common, endings, scheduling
from projections.events import Idempotency, JobFailed, RepoSettings, Sidecar
from tests.projections.world import raised_codes
from tools.simulation import SETTINGS, Simulation, empty_report

RAISED: Final = raised_codes()
ACTIONS: Final = tuple(action.__name__ for _, action in Simulation(0).actions)
GHOST: Final = "ghost-0000"
"""An id nothing in any state ever has."""

EXAMPLES: Final = int(os.environ.get("REWIND_STATEFUL_EXAMPLES", "300"))
STEPS: Final = 100


class CodecSimulation(Simulation):
    """The simulation, with every event it folds passing through the log's codec first, and
    the payloads kept for replay."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.payloads: list[bytes] = []

    def _fold(self, event: Event, actor: str) -> Envelope:
        payload = encode(make(event, ts=self.now, actor=actor))
        self.payloads.append(payload)
        return super()._fold(decode(payload).event, actor)


def replay(payloads: list[bytes], state: State | None = None, start: int = 0) -> State:
    """Fold ``payloads[start:]`` into ``state`` (a new one by default), numbered from
    ``start + 1``."""
    state = State() if state is None else state
    for seq, payload in enumerate(payloads[start:], start=start + 1):
        evolve(state, seq, decode(payload))
    return state


class DomainMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sim = CodecSimulation(0)
        self.refusals = 0
        self.accepted = 0

    @property
    def state(self) -> State:
        return self.sim.state

    # -- valid commands: the simulation's actions --------------------------------------------

    @initialize(seed=st.integers(0, 2**32 - 1))
    def boot(self, seed: int) -> None:
        self.sim = CodecSimulation(seed)
        self._drain(self.sim.boot(clean=True))
        self._drain(self.sim.setup())

    def _drain(self, envelopes: Iterator[Envelope]) -> None:
        for _ in envelopes:
            pass

    @rule(actions=st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=25))
    def simulate(self, actions: list[str]) -> None:
        """A burst of the server's ordinary work, in an order hypothesis chooses."""
        for action in actions:
            command = getattr(self.sim, action)()
            if command is not None:
                self.sim.apply(command)
            if self.sim.reboot is not None:
                clean, self.sim.reboot = self.sim.reboot, None
                self._drain(self.sim.boot(clean=clean))

    @rule(repo=st.sampled_from(["api", "web"]), jobs=st.integers(2, 5))
    def burst(self, repo: str, jobs: int) -> None:
        """Several jobs of one repository at once, then a dispatch: they queue for its lock,
        which the simulation's spread over six repositories rarely makes happen."""
        found = self.state.repos.get(repo)
        owner = next(iter(self.state.users.by_id), None)
        if found is None or not found.usable or owner is None:
            return
        for _ in range(jobs):
            job_id = self.sim.new_id("burst")
            self.sim.apply(c.CreateJob(job_id=job_id, owner=owner, prompt="p", repo=repo))
            self.sim.apply(c.StartJob(job_id=job_id))
        self.sim.apply(c.Dispatch())

    @rule(max_concurrent=st.sampled_from([1, 2, 3, SETTINGS.max_concurrent]))
    def configure(self, max_concurrent: int) -> None:
        """Fewer slots than the simulation's usual 12, so that dispatch meets its limit."""
        settings_now = msgspec.structs.replace(SETTINGS, max_concurrent=max_concurrent)
        self.sim.apply(c.Configure(settings=settings_now))

    @rule(seconds=st.sampled_from([1.0, 30.0, 120.0, 700.0, 4000.0]))
    def time_passes(self, seconds: float) -> None:
        """Deadlines, retry times, retention and stale staging come within reach."""
        self.sim.now += seconds

    # -- invalid commands: each with the refusal it must get ---------------------------------

    @rule(data=st.data())
    def refused(self, data: st.DataObject) -> None:
        candidates = list(self._illegal())
        command, code = data.draw(st.sampled_from(candidates), label="illegal command")
        before = encode_state(self.state)
        try:
            events = decide(self.state, command, self.sim.now)
        except DomainError as refusal:
            assert refusal.code == code, (command, refusal.code, refusal.message)
            assert refusal.kind == RAISED[code]
            assert encode_state(self.state) == before, f"refusing {command} changed the state"
            self.refusals += 1
            return
        raise AssertionError(f"{command} was not refused ({code} expected): it gave {events}")

    def _illegal(self) -> Iterator[tuple[c.Command, str]]:
        """Commands ``decide`` must refuse in the current state, with their codes."""
        state = self.state
        yield c.StartJob(job_id=GHOST), "job_not_found"
        yield c.CancelJob(job_id=GHOST), "job_not_found"
        yield c.RecordExit(job_id=GHOST, code=0), "job_not_found"
        yield c.PurgeJob(job_id=GHOST), "job_not_found"
        yield c.FinishPreparation(batch_id=GHOST, generation=1, commit="c"), "batch_not_found"
        yield c.StartAttempt(callback_id=GHOST), "callback_not_found"
        yield c.FinishCleanup(path=GHOST), "cleanup_not_found"
        yield c.RecordRemoval(kind="container", resource_id=GHOST), "resource_not_found"
        yield c.RevokeToken(token_hash=GHOST), "token_not_found"
        yield c.RemoveUser(user_id=GHOST), "user_not_found"
        yield c.DegradeRepo(repo=GHOST, reason="r"), "repo_not_found"
        yield c.RemoveStaging(path=GHOST, reason="orphan"), "staging_not_found"
        yield c.InitializeServer(server_id="again"), "already_initialized"
        owner = next(iter(state.users.by_id), None)
        repo = next((r for r in state.repos.by_name.values() if r.usable), None)
        if owner is not None and repo is not None:
            new = c.CreateJob(job_id=GHOST, owner=owner, repo=repo.name, prompt="p")
            yield replace(new, prompt="  "), "empty_prompt"
            yield replace(new, agent="no-such-agent"), "unknown_agent"
            yield replace(new, timeout_seconds=-5.0), "invalid_timeout"
            yield replace(new, env={"A-B": "x"}), "invalid_env"
            yield replace(new, env={"LD_PRELOAD": "x"}), "env_denied"
            yield replace(new, owner=GHOST), "user_not_found"
            yield replace(new, repo=GHOST), "repo_not_found"
            for job in state.jobs.by_id.values():
                yield replace(new, job_id=job.job_id), "job_exists"
                key = job.spec.idempotency
                if key is not None and key.key_hash in state.jobs.idempotency:
                    other = Idempotency(key_hash=key.key_hash, body_hash=key.body_hash + "x")
                    yield replace(new, idempotency=other), "idempotency_conflict"
                break
        for user_id in state.users.by_id:
            yield (
                c.AddUser(user_id=user_id, username="x9", role="user", password_hash=None),
                ("user_exists"),
            )
        for token_hash, token in state.users.tokens.items():
            yield (
                c.IssueToken(
                    token_hash=token_hash, user_id=token.user_id, label="l", ttl_seconds=None
                ),
                "token_exists",
            )
        for name, found in state.repos.by_name.items():
            yield c.RegisterRepo(repo=name, git_url="https://g", branch="main"), "repo_exists"
            if found.clone != "cloning":
                yield c.FinishClone(repo=name, commit="c"), "not_cloning"
            if found.degraded is None:
                yield c.RestoreRepo(repo=name), "not_degraded"
        for job in state.jobs.by_id.values():
            yield from self._illegal_for_job(job.job_id)
        for batch in state.batches.active.values():
            for generation in (batch.generation - 1, batch.generation + 1):
                yield (
                    c.FinishPreparation(batch_id=batch.batch_id, generation=generation, commit="c"),
                    "stale_preparation",
                )
            if batch.phase != "preparing":
                yield (
                    c.FinishPreparation(
                        batch_id=batch.batch_id, generation=batch.generation, error="e"
                    ),
                    "stale_preparation",
                )
        for delivery in state.callbacks.by_id.values():
            if not delivery.in_flight:
                yield (
                    c.RecordAttempt(
                        callback_id=delivery.callback_id,
                        attempt=len(delivery.attempts),
                        outcome="delivered",
                    ),
                    "attempt_not_in_flight",
                )
            if delivery.status != "pending":
                yield c.StartAttempt(callback_id=delivery.callback_id), "callback_not_pending"

    def _illegal_for_job(self, job_id: str) -> Iterator[tuple[c.Command, str]]:
        job = self.state.jobs.by_id[job_id]
        if job.deleted:
            yield c.StartJob(job_id=job_id), "job_not_found"
            yield c.CancelJob(job_id=job_id), "job_not_found"
            yield c.DeleteJob(job_id=job_id), "job_not_found"
            return
        if job.terminal:
            yield c.StartJob(job_id=job_id), "job_not_startable"
            yield c.CancelJob(job_id=job_id), "job_finished"
            yield c.FailJob(job_id=job_id, reason="r"), "job_finished"
            yield c.RecordExit(job_id=job_id, code=1), "not_running"
            yield c.Reattach(job_id=job_id, boot_id="b"), "not_running"
            yield c.RecordStaleHeartbeat(job_id=job_id, heartbeat_age=None), "not_running"
            yield c.RecordDamagedRunDir(job_id=job_id, error="r"), "not_running"
            yield c.StartStaging(job_id=job_id), "job_started"
            if job.deleted_at is None:
                yield c.PurgeJob(job_id=job_id), "job_not_deleted"
            return
        yield c.PurgeJob(job_id=job_id), "job_not_deleted"
        if job.status in ("created", "queued", "waiting"):
            yield c.RecordExit(job_id=job_id, code=0), "not_running"
            yield c.BeginLaunch(job_id=job_id), "not_launchable"
            yield c.Reattach(job_id=job_id, boot_id="b"), "not_running"
            yield (
                c.RecordExit(job_id=job_id, signal=15, stopped="deadline"),
                "not_running",
            )
            yield (
                c.RecordProcessStarted(job_id=job_id, pid=1, process_start_time=1.0, boot_id="b"),
                "not_launching",
            )
        if job.status in ("queued", "waiting"):
            yield c.StageFile(job_id=job_id, name="f", size=1, sha256="0"), "job_started"
            yield c.RecordWorkspace(job_id=job_id), "not_preparing"
            yield c.RecordStaleHeartbeat(job_id=job_id, heartbeat_age=None), "not_running"
        if job.status == "running":
            yield c.StartJob(job_id=job_id), "job_not_startable"
            yield c.FailJob(job_id=job_id, reason="r"), "has_process"
            yield (
                c.RecordProcessStarted(job_id=job_id, pid=1, process_start_time=1.0, boot_id="b"),
                "not_launching",
            )
            yield c.RecordStaleHeartbeat(job_id=job_id, heartbeat_age=0.0), "heartbeat_fresh"

    # -- anything at all: accepted or refused, never inconsistent ---------------------------

    @rule(data=st.data())
    def anything(self, data: st.DataObject) -> None:
        command = self._any_command(data)
        note(f"any command: {command}")
        before = encode_state(self.state)
        try:
            decide(self.state, command, self.sim.now)
        except DomainError as refusal:
            assert RAISED.get(refusal.code) == refusal.kind, refusal.code
            assert encode_state(self.state) == before
            self.refusals += 1
            return
        self.sim.apply(command)
        self.accepted += 1
        if isinstance(command, c.StopServer):
            self._drain(self.sim.boot(clean=True))

    def _any_command(self, data: st.DataObject) -> c.Command:
        """A command of any type, its ids drawn from the state (or unknown), its other
        fields from small sets that include the illegal values. Strategies are only
        ``sampled_from`` of plain lists: building composite strategies per step costs more
        than all the domain work of the machine."""
        state = self.state

        def pick(options: list[Any]) -> Any:
            return data.draw(st.sampled_from(options))

        def job() -> str:
            return str(pick([*state.jobs.by_id, GHOST]))

        def text() -> str:
            return str(pick(["x", "error: boom"]))

        def outcome() -> dict[str, str | None]:
            chosen: dict[str, str | None] = pick(
                [{"commit": "c", "error": None}, {"commit": None, "error": "e"}, {}]
            )
            return chosen

        def repo() -> str:
            return str(pick([*state.repos.by_name, GHOST]))

        def cleanup() -> str:
            return str(pick([*state.cleanup.pending, GHOST]))

        def callback() -> str:
            return str(pick([*state.callbacks.by_id, GHOST]))

        def resource() -> str:
            return str(pick([*state.resources.containers, *state.resources.networks, GHOST]))

        def kind() -> Literal["container", "network"]:
            return "network" if pick([False, True]) else "container"

        top = max(state.locks.generations.values(), default=0) + 1
        makers: list[Callable[[], c.Command]] = [
            lambda: c.StartJob(job_id=job()),
            lambda: c.CancelJob(job_id=job()),
            lambda: c.DeleteJob(job_id=job()),
            lambda: c.PurgeJob(job_id=job()),
            lambda: c.FailJob(job_id=job(), reason=text()),
            lambda: c.RecordStaleHeartbeat(job_id=job(), heartbeat_age=pick([None, 0.0, 999.0])),
            lambda: c.RecordDamagedRunDir(job_id=job(), error=text()),
            lambda: c.Reattach(job_id=job(), boot_id=text()),
            lambda: c.RecordExit(
                job_id=job(),
                code=pick([None, 0, 1, 137]),
                signal=pick([None, 9, 15]),
                stopped=pick([None, "request", "deadline"]),
                while_down=pick([False, True]),
            ),
            lambda: c.RecordWorkspace(job_id=job()),
            lambda: c.BeginLaunch(job_id=job()),
            lambda: c.RecordProcessStarted(
                job_id=job(), pid=7, process_start_time=1.0, boot_id=text()
            ),
            lambda: c.StartStaging(job_id=job()),
            lambda: c.StageFile(job_id=job(), name=text(), size=1, sha256=text()),
            lambda: c.RetryCallback(job_id=job(), index=pick([0, 1])),
            lambda: c.RecordContainer(job_id=job(), container_id=text(), sidecar="cidx"),
            lambda: c.RecordNetwork(job_id=job(), network_id=text()),
            lambda: c.FinishPreparation(
                batch_id=pick([*state.batches.active, GHOST]),
                generation=pick(list(range(top + 1))),
                **outcome(),
            ),
            lambda: c.StartAttempt(callback_id=callback()),
            lambda: c.RecordAttempt(
                callback_id=callback(),
                attempt=pick([0, 1, 2, 3]),
                outcome=pick(["delivered", "retry", "give_up"]),
                status=pick([None, 200, 410, 503]),
                retry_after=pick([None, 1.0, 9999.0]),
            ),
            lambda: c.FinishCleanup(path=cleanup(), error=pick([None, "EBUSY"])),
            lambda: c.RecordArchived(path=cleanup(), archive=text()),
            lambda: c.RecordRemoval(kind=kind(), resource_id=resource(), error=pick([None, "x"])),
            lambda: c.RecordOrphan(kind=kind(), resource_id=resource(), job_id=pick([None, job()])),
            lambda: c.RemoveStaging(
                path=pick([*state.staging.dirs, GHOST]),
                reason=pick(["consumed", "deleted", "stale", "orphan"]),
            ),
            lambda: c.DegradeRepo(repo=repo(), reason=text()),
            lambda: c.RestoreRepo(repo=repo()),
            lambda: c.RetryClone(repo=repo()),
            lambda: c.UnregisterRepo(repo=repo()),
            lambda: c.ChangeRepoSettings(
                repo=repo(), settings=RepoSettings(default_agent=pick([None, "codex"]))
            ),
            lambda: c.FinishClone(repo=repo(), **outcome()),
            lambda: c.RemoveUser(user_id=pick([*state.users.by_id, GHOST])),
            lambda: c.CreateJob(
                job_id=pick(["fuzz-1", "fuzz-2", *state.jobs.by_id]),
                owner=pick([*state.users.by_id, GHOST]),
                prompt=pick(["p", " "]),
                repo=repo(),
                timeout_seconds=pick([None, 0.0, 30.0, 1e6]),
                sidecars=pick([[], [Sidecar(name="db", image="pg")]]),
                idempotency=pick(
                    [None, *(Idempotency(key_hash=k, body_hash=b) for k in "ab" for b in "12")]
                ),
            ),
            c.Dispatch,
            c.StopServer,
            lambda: c.CompleteRecovery(report=empty_report()),
        ]
        maker: Callable[[], c.Command] = pick(makers)
        return maker()

    # -- snapshots --------------------------------------------------------------------------

    @rule(data=st.data())
    def snapshot_at_k(self, data: st.DataObject) -> None:
        payloads = self.sim.payloads
        k = data.draw(st.integers(0, len(payloads)), label="k")
        snapshot = decode_state(encode_state(replay(payloads[:k])))
        assert snapshot.last_seq == k
        live = encode_state(self.state)
        assert encode_state(replay(payloads, snapshot, start=k)) == live
        assert encode_state(replay(payloads)) == live

    # -- after every step --------------------------------------------------------------------

    @invariant()
    def consistent(self) -> None:
        problems = check(self.state)
        assert problems == [], problems

    @precondition(lambda self: self.state.last_seq > 0)
    @invariant()
    def numbered_without_gaps(self) -> None:
        assert self.state.last_seq == len(self.sim.payloads)


MACHINE_SETTINGS: Final = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Totals:
    """Counts across the examples of one run, for the report."""

    examples = 0
    refusals = 0
    accepted = 0
    events = 0


class CountingMachine(DomainMachine):
    def teardown(self) -> None:
        Totals.examples += 1
        Totals.refusals += self.refusals
        Totals.accepted += self.accepted
        Totals.events += len(self.sim.payloads)


def test_domain_state_machine(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    run_state_machine_as_test(CountingMachine, settings=MACHINE_SETTINGS)
    elapsed = time.perf_counter() - started
    assert Totals.examples >= min(EXAMPLES, 20), "the machine ran too few examples to mean much"
    assert Totals.refusals > 0 and Totals.accepted > 0
    with capsys.disabled():
        print(
            f"\nstate machine: {Totals.examples} examples, {Totals.events} events, "
            f"{Totals.refusals} refusals, {Totals.accepted} fuzzed commands accepted, "
            f"{elapsed:.1f} s"
        )


# -- deliberately broken variants of decide, each caught by the machine ---------------------


def lifo_dispatch(state: State, command: c.Dispatch, now: float) -> list[Event]:
    """Dispatch from the tail of the run queue: FIFO broken."""
    queue = state.jobs.queue
    state.jobs.queue = dict(reversed(queue.items()))
    try:
        return scheduling.dispatch(state, command, now)
    finally:
        state.jobs.queue = queue


def unbounded_dispatch(state: State, command: c.Dispatch, now: float) -> list[Event]:
    """Dispatch as if there were no ``max_concurrent``."""
    settings_in_force = state.server.settings
    state.server.settings = msgspec.structs.replace(settings_in_force, max_concurrent=10**6)
    try:
        return scheduling.dispatch(state, command, now)
    finally:
        state.server.settings = settings_in_force


def careless_exit(state: State, command: c.RecordExit, now: float) -> list[Event]:
    """Record an exit without asking whether the job already ended: a second terminal."""
    found = state.jobs.by_id.get(command.job_id)
    if found is not None and found.terminal and command.code:
        reason = f"the agent exited with code {command.code}"
        return [JobFailed(job_id=found.job_id, reason=reason, exit_code=command.code, at=now)]
    return endings.record_exit(state, command, now)


def last_waiter_first(
    state: State, repo_name: str, reason: str, now: float, *, unusable: str | None = None
) -> list[Event]:
    """Hand the lock to the newest waiter alone, ahead of the older ones."""
    events = ORIGINAL_RELEASE(state, repo_name, reason, now, unusable=unusable)
    waiters = state.jobs.waiters(repo_name)
    if len(waiters) < 2:
        return events
    return [
        msgspec.structs.replace(e, job_ids=waiters[-1:]) if hasattr(e, "job_ids") else e
        for e in events
    ]


ORIGINAL_RELEASE: Final = common.release_lock

BROKEN: Final[dict[str, Callable[[pytest.MonkeyPatch], None]]] = {
    "FIFO dispatch": lambda mp: mp.setitem(DECIDERS, c.Dispatch, lifo_dispatch),
    "max_concurrent": lambda mp: mp.setitem(DECIDERS, c.Dispatch, unbounded_dispatch),
    "one terminal transition": lambda mp: mp.setitem(DECIDERS, c.RecordExit, careless_exit),
    "FIFO lock hand-off": lambda mp: mp.setattr(common, "release_lock", last_waiter_first),
}
FINDINGS: Final = {
    "FIFO dispatch": "dispatched ahead of",
    "max_concurrent": "max_concurrent",
    "one terminal transition": "job.failed cannot happen to job|RecordExit.* was not refused",
    "FIFO lock hand-off": "skips earlier waiters",
}


@pytest.mark.parametrize("rule_broken", list(BROKEN))
def test_the_machine_catches_a_broken_decide(
    rule_broken: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    BROKEN[rule_broken](monkeypatch)
    hunt = settings(
        MACHINE_SETTINGS,
        max_examples=300,
        phases=[Phase.generate],
        derandomize=True,
        database=None,
        print_blob=False,
    )
    with pytest.raises(AssertionError, match=FINDINGS[rule_broken]):
        run_state_machine_as_test(DomainMachine, settings=hunt)
