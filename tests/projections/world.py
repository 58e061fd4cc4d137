"""A small server world for the domain tests, driven the way the service drives it: every
command goes through ``decide``, every event through the real codec and ``evolve``.

``World.do`` applies a command and returns its events; ``World.refuse`` asserts a command is
refused (and that refusing changed nothing, byte for byte); the ``run_*`` helpers bring a job
to a given point of its lifecycle through the same commands the service would issue.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, Final

import pytest

from projections import (
    DomainError,
    Envelope,
    Event,
    State,
    check,
    decide,
    decode,
    encode,
    encode_state,
    evolve,
    make,
)
from projections import commands as c
from projections.decide import common as decide_common
from projections.errors import ErrorKind
from projections.events import AgentSpec, RecoveryReport, ServerSettings

AGENTS: Final = ("claude-code", "codex")
SETTINGS: Final = ServerSettings(
    max_concurrent=3,
    default_timeout_seconds=600.0,
    max_timeout_seconds=3600.0,
    retention_seconds=100.0,
    staging_max_age_seconds=50.0,
    callback_schedule=[5.0, 30.0],
    agents={name: AgentSpec(command=[name, "{prompt}"]) for name in AGENTS},
)
T0: Final = 10_000.0


def report() -> RecoveryReport:
    return RecoveryReport(
        phases={},
        snapshot_seq=None,
        snapshots_skipped=[],
        events_replayed=0,
        torn_bytes_cut=0,
        zero_fill_trimmed=0,
        jobs_reattached=0,
        jobs_finished_while_down=0,
        jobs_lost=0,
        jobs_relaunched=0,
        preparations_redone=0,
        locks_released=0,
        callbacks_resumed=0,
        cleanups_resumed=0,
        orphans_removed=0,
        repos_degraded=0,
    )


class World:
    """A state, a clock and the log of everything folded so far."""

    def __init__(self) -> None:
        self.state = State()
        self.now = T0
        self.log: list[Envelope] = []

    # -- the two primitives ------------------------------------------------------------------

    def do(self, command: c.Command, *, advance: float = 1.0) -> list[Event]:
        """Decide ``command`` at the next instant and fold its events, checking after each."""
        self.now += advance
        events = decide(self.state, command, self.now)
        for event in events:
            self.fold(event)
            problems = check(self.state)
            assert problems == [], (event, problems)
        return events

    def fold(self, event: Event) -> None:
        """Fold one event as the log would hand it back: encoded, then decoded."""
        envelope = decode(encode(make(event, ts=self.now, actor="test")))
        assert envelope.event == event
        self.log.append(envelope)
        evolve(self.state, self.state.last_seq + 1, envelope)

    def refuse(self, command: c.Command, kind: ErrorKind, code: str) -> DomainError:
        """``command`` is refused with ``kind``/``code`` and the state is left as it was."""
        before = encode_state(self.state)
        with pytest.raises(DomainError) as caught:
            decide(self.state, command, self.now + 1.0)
        assert (caught.value.kind, caught.value.code) == (kind, code), caught.value.message
        assert caught.value.message
        assert encode_state(self.state) == before
        return caught.value

    # -- setting the scene ---------------------------------------------------------------------

    def boot(self, *, repos: tuple[str, ...] = ("api", "web")) -> World:
        self.do(c.InitializeServer(server_id="srv-test"))
        self.do(c.Configure(settings=SETTINGS))
        self.do(c.StartServer(boot_id="boot-1", pid=100, version="test"))
        self.do(c.CompleteRecovery(report=report()))
        self.do(c.AddUser(user_id="alice", username="alice", role="admin", password_hash=None))
        self.do(c.AddUser(user_id="bob", username="bob", role="user", password_hash=None))
        for repo in repos:
            self.register(repo)
        return self

    def register(self, repo: str) -> None:
        self.do(c.RegisterRepo(repo=repo, git_url=f"https://git.example/{repo}.git", branch="main"))
        self.do(c.FinishClone(repo=repo, commit="c0" * 20))

    def create(self, job_id: str, repo: str = "api", **options: Any) -> list[Event]:
        options.setdefault("owner", "bob")
        options.setdefault("prompt", f"work on {repo}")
        return self.do(c.CreateJob(job_id=job_id, repo=repo, **options))

    def queue(self, job_id: str, repo: str = "api", **options: Any) -> None:
        self.create(job_id, repo, **options)
        self.do(c.StartJob(job_id=job_id))

    def batch_of(self, job_id: str) -> str:
        batch_id = self.state.jobs.by_id[job_id].batch_id
        assert batch_id is not None, f"{job_id} is in no batch"
        return batch_id

    def prepare(self, job_id: str) -> list[Event]:
        """Finish the preparation of ``job_id``'s batch successfully."""
        batch = self.state.batches.active[self.batch_of(job_id)]
        return self.do(
            c.FinishPreparation(batch_id=batch.batch_id, generation=batch.generation, commit="c1")
        )

    def run_to_preparing(self, job_id: str, repo: str = "api", **options: Any) -> None:
        self.queue(job_id, repo, **options)
        self.do(c.Dispatch())
        assert self.state.jobs.by_id[job_id].status == "preparing"

    def run_to_launching(self, job_id: str, repo: str = "api", **options: Any) -> None:
        self.run_to_preparing(job_id, repo, **options)
        self.prepare(job_id)
        self.do(c.RecordWorkspace(job_id=job_id))
        self.do(c.BeginLaunch(job_id=job_id))

    def run_to_running(self, job_id: str, repo: str = "api", **options: Any) -> None:
        self.run_to_launching(job_id, repo, **options)
        self.do(
            c.RecordProcessStarted(job_id=job_id, pid=4242, process_start_time=1.5, boot_id="b1")
        )
        assert self.state.jobs.by_id[job_id].status == "running"

    def complete(self, job_id: str, repo: str = "api", **options: Any) -> list[Event]:
        self.run_to_running(job_id, repo, **options)
        return self.do(c.RecordExit(job_id=job_id, code=0))

    def status(self, job_id: str) -> str:
        return self.state.jobs.by_id[job_id].status


def types(events: list[Event]) -> list[type[Event]]:
    return [type(event) for event in events]


def raised_codes() -> dict[str, ErrorKind]:
    """Every (code, kind) the decide sources can raise, read from their syntax trees: the
    ``not_found``/``conflict``/``invalid``/``forbidden`` helpers, and ``require``, which raises
    conflicts."""
    found: dict[str, ErrorKind] = {}
    kinds: dict[str, ErrorKind] = {
        "not_found": "not_found",
        "conflict": "conflict",
        "invalid": "invalid",
        "forbidden": "forbidden",
    }
    for source in Path(decide_common.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in kinds:
                argument, kind = node.args[0], kinds[name]
            elif name == "require" and len(node.args) == 4:
                argument, kind = node.args[2], "conflict"
            else:
                continue
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                assert found.setdefault(argument.value, kind) == kind, argument.value
    return found
