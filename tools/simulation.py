"""A deterministic, realistic server history, made by driving ``decide`` like a server would.

Every event comes out of ``decide`` and is folded by ``evolve`` before the next command is
chosen, so the history is valid by construction: whatever the rules forbid never appears.
Jobs arrive on several repositories and go through their whole lifecycle: queue, wait for a
repository lock, batches sharing one preparation, workspaces, sidecar containers, agents that
complete, fail, time out or are cancelled; then webhooks with retries and give-ups, workspace
cleanup (sometimes failing first), container removal, deletion and purge. The server stops
cleanly or crashes now and then; recovery re-attaches or loses running jobs. Repositories
are degraded and restored, users removed, tokens revoked, snapshots recorded.

Randomness is a ``random.Random(seed)`` and time a counter: the same ``(seed, events)``
always gives the same history, in any process. The shell's effects (git, processes, HTTP) are
imagined: the simulation only issues the commands that would report them.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterator
from typing import Final

from projections import Envelope, State, decide, evolve, launches, make
from projections import commands as c
from projections.errors import DomainError
from projections.events import (
    AgentSpec,
    BatchFailed,
    CallbackGaveUp,
    Event,
    Idempotency,
    JobCancelled,
    JobCompleted,
    JobCreated,
    JobDeleted,
    JobFailed,
    JobLost,
    JobTimedOut,
    RecoveryReport,
    RepoSettings,
    Role,
    ServerSettings,
    Sidecar,
)
from projections.jobs import Job

START_TS: Final = 1_700_000_000.0
SNAPSHOT_EVERY: Final = 10_000
REPOS: Final = ("api", "web", "infra", "docs", "mobile", "ml")
AGENTS: Final = ("claude-code", "gemini", "codex", "aider")
USERS: Final = ("alice", "bob", "carol", "dave")
MAX_BACKLOG: Final = 60
STALE: Final = 300.0
"""The heartbeat age of an agent found silent at a restart (stale at any setting here)."""
MIN_RUN_SECONDS: Final = 20.0
"""An agent runs a while (about 100 commands of simulated time), so several run at once and
cancellations, crashes and deletions find running jobs, as on a real server."""
SETTINGS: Final = ServerSettings(
    max_concurrent=12,
    default_timeout_seconds=900.0,
    max_timeout_seconds=3600.0,
    retention_seconds=600.0,
    staging_max_age_seconds=1800.0,
    agents={name: AgentSpec(command=[name, "{prompt}"]) for name in AGENTS},
)


def empty_report() -> RecoveryReport:
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


class Simulation:
    """A server's decisions over time, without the server. ``state`` is always the fold of
    everything emitted so far."""

    def __init__(self, seed: int, *, start: float = START_TS) -> None:
        self.rng = random.Random(seed)
        self.now = start
        self.state = State()
        self.seq = 0
        self.ids = 0
        self.boots = 0
        self.created: deque[str] = deque()
        """Jobs created but not started, oldest first."""
        self.finished: deque[str] = deque()
        """Terminal jobs not deleted yet, oldest first."""
        self.deleted: deque[str] = deque()
        self.gave_up: deque[str] = deque()
        self.reboot: bool | None = None
        """Set by ``restart``: boot next, cleanly (True) or after a crash (False)."""
        self.actions: list[tuple[float, Callable[[], c.Command | None]]] = [
            (10, self.create_job),
            (8, self.start_job),
            (10, self.dispatch),
            (6, self.finish_preparation),
            (14, self.advance_job),
            (9, self.end_job),
            (0.6, self.cancel_job),
            (8, self.callback_step),
            (8, self.cleanup_step),
            (5, self.remove_resource),
            (6, self.delete_job),
            (8, self.purge_job),
            (0.3, self.repo_event),
            (0.15, self.user_event),
            (0.03, self.restart),
        ]

    # -- running the simulation ------------------------------------------------------------

    def apply(self, command: c.Command, actor: str = "system") -> list[Envelope]:
        """Decide and fold one command, as the service's single writer does."""
        self.now += self.rng.random() * 0.4
        events = decide(self.state, command, self.now)
        return [self._fold(event, actor) for event in events]

    def _fold(self, event: Event, actor: str) -> Envelope:
        envelope = make(event, ts=self.now, actor=actor)
        self.seq += 1
        evolve(self.state, self.seq, envelope)
        if isinstance(event, JobCreated):
            self.created.append(event.job_id)
        elif isinstance(event, JobDeleted):
            self.deleted.append(event.job_id)
        elif isinstance(event, _ENDINGS):
            self.finished.append(event.job_id)
        elif isinstance(event, CallbackGaveUp):
            self.gave_up.append(event.callback_id)
        elif isinstance(event, BatchFailed):
            batch = self.state.batches.active[event.batch_id]
            self.finished.extend(j for j in batch.job_ids if self.state.jobs.by_id[j].terminal)
        return envelope

    def history(self, events: int) -> Iterator[Envelope]:
        """The first ``events`` events of this seed's history."""
        for emitted, envelope in enumerate(self._stream(), start=1):
            yield envelope
            if emitted >= events:
                return

    def _stream(self) -> Iterator[Envelope]:
        yield from self.boot(clean=True)
        yield from self.setup()
        weights = [w for w, _ in self.actions]
        actions = [a for _, a in self.actions]
        next_snapshot = SNAPSHOT_EVERY
        while True:
            for action in self.rng.choices(actions, weights, k=8):
                command = action()
                if command is not None:
                    yield from self.apply(command, _actor(command))
                    break
            if self.reboot is not None:
                clean, self.reboot = self.reboot, None
                yield from self.boot(clean=clean)
            if self.seq >= next_snapshot:
                next_snapshot += SNAPSHOT_EVERY
                yield from self.apply(c.RecordSnapshot(seq=self.seq, file=f"{self.seq:020d}.snap"))

    def new_id(self, prefix: str) -> str:
        self.ids += 1
        return f"{prefix}-{self.ids:08d}"

    # -- boot and setup ------------------------------------------------------------------------

    def boot(self, *, clean: bool) -> Iterator[Envelope]:
        """A server start, after a clean stop or after a crash (``clean=False``), with the
        recovery a real server performs either way: agents are detached and outlive the
        server, so the ones still running are re-attached and the others lost."""
        state = self.state
        if state.server.server_id is None:
            yield from self.apply(c.InitializeServer(server_id="server-sim"))
        yield from self.apply(c.Configure(settings=SETTINGS))
        self.boots += 1
        boot_id = f"boot-{self.boots}"
        yield from self.apply(c.StartServer(boot_id=boot_id, pid=1000 + self.boots, version="sim"))
        survival = 0.9 if clean else 0.7
        for job_id in list(state.jobs.attached):
            job = state.jobs.by_id[job_id]
            if job.process is None:
                yield from self.apply(c.FailJob(job_id=job_id, reason="launch interrupted"))
            elif self.rng.random() < survival:
                yield from self.apply(c.Reattach(job_id=job_id, boot_id=boot_id))
            else:
                yield from self.apply(c.RecordStaleHeartbeat(job_id=job_id, heartbeat_age=STALE))
        yield from self.apply(c.CompleteRecovery(report=empty_report()), "recovery")

    def setup(self) -> Iterator[Envelope]:
        for index, user in enumerate(USERS):
            role: Role = "admin" if index == 0 else "user"
            yield from self.apply(
                c.AddUser(user_id=user, username=user, role=role, password_hash=None)
            )
            yield from self.apply(
                c.IssueToken(
                    token_hash=f"{self.rng.getrandbits(256):064x}",
                    user_id=user,
                    label="cli",
                    ttl_seconds=None,
                )
            )
        for repo in REPOS:
            yield from self.apply(
                c.RegisterRepo(
                    repo=repo,
                    git_url=f"https://git.example.com/acme/{repo}.git",
                    branch="main",
                    settings=RepoSettings(index_command=["cidx", "index"]),
                )
            )
            yield from self.apply(c.FinishClone(repo=repo, commit=self.commit()))

    def commit(self) -> str:
        return f"{self.rng.getrandbits(160):040x}"

    # -- actions: each returns a command, or None when it does not apply now -------------------

    def create_job(self) -> c.Command | None:
        state = self.state
        if len(state.jobs.queue) + len(self.created) >= MAX_BACKLOG:
            return None
        rng = self.rng
        owners = [u for u in state.users.by_id if u in USERS] or list(state.users.by_id)
        repos = [name for name in REPOS if (repo := state.repos.get(name)) and repo.usable]
        if not owners or not repos:
            return None
        job_id = self.new_id("job")
        owner = rng.choice(owners)
        callbacks = (
            [c.CallbackRequest(url=f"https://hooks.example.com/{owner}")]
            if rng.random() < 0.6
            else []
        )
        sidecars = (
            [Sidecar(name="cidx", image="cidx:latest", command=["cidx", "serve"])]
            if rng.random() < 0.2
            else []
        )
        key = (
            Idempotency(key_hash=f"{rng.getrandbits(128):032x}", body_hash="b" * 64)
            if rng.random() < 0.3
            else None
        )
        return c.CreateJob(
            job_id=job_id,
            owner=owner,
            prompt=f"Fix issue #{rng.randrange(1, 5000)}",
            repo=rng.choice(repos),
            agent=rng.choice(AGENTS),
            timeout_seconds=rng.choice([60.0, 900.0, 900.0, 900.0]),
            auto_cleanup=rng.random() < 0.5,
            sidecars=sidecars,
            callbacks=callbacks,
            idempotency=key,
        )

    def start_job(self) -> c.Command | None:
        while self.created:
            job_id = self.created[0]
            job = self.state.jobs.get(job_id)
            if job is None or job.status != "created":
                self.created.popleft()
                continue
            if job.files or self.rng.random() < 0.7:
                self.created.popleft()
                return c.StartJob(job_id=job_id)
            if self.state.staging.of_job(job_id) is None:
                return c.StartStaging(job_id=job_id)
            return c.StageFile(job_id=job_id, name="spec.md", size=2048, sha256="ab" * 32)
        return None

    def dispatch(self) -> c.Command | None:
        return c.Dispatch() if self.state.jobs.queue else None

    def finish_preparation(self) -> c.Command | None:
        preparing = [b for b in self.state.batches.active.values() if b.phase == "preparing"]
        if not preparing:
            return None
        batch = self.rng.choice(preparing)
        if self.rng.random() < 0.05:
            return c.FinishPreparation(
                batch_id=batch.batch_id, generation=batch.generation, error="git pull timed out"
            )
        return c.FinishPreparation(
            batch_id=batch.batch_id, generation=batch.generation, commit=self.commit()
        )

    def advance_job(self) -> c.Command | None:
        """One step of a job towards running, as ``projections.launches`` says what is due:
        the first member of a prepared batch whose launch is due (staging, workspace,
        sidecars, the launch intent) or in flight (its process)."""
        state = self.state
        for batch in state.batches.active.values():
            for job_id in batch.job_ids:
                job = state.jobs.by_id.get(job_id)
                if job is None:
                    continue
                if launches.due(state, job):
                    return self._next_launch_step(job)
                if launches.in_flight(job):
                    return self._process_started(job)
        return None

    def _next_launch_step(self, job: Job) -> c.Command:
        job_id = job.job_id
        staged = self.state.staging.of_job(job_id)
        if staged is not None:
            return c.RemoveStaging(path=staged, reason="consumed")
        if job.workspace is None:
            return c.RecordWorkspace(job_id=job_id)
        containers, networks = self.state.resources.of_job(job_id)
        if job.spec.options.sidecars and not networks:
            return c.RecordNetwork(job_id=job_id, network_id=self.new_id("net"))
        if job.spec.options.sidecars and not containers:
            sidecar = job.spec.options.sidecars[0]
            return c.RecordContainer(
                job_id=job_id, container_id=self.new_id("ctr"), sidecar=sidecar.name
            )
        return c.BeginLaunch(job_id=job_id)

    def _process_started(self, job: Job) -> c.Command:
        if self.rng.random() < 0.02:
            return c.FailJob(job_id=job.job_id, reason="agent binary not found")
        return c.RecordProcessStarted(
            job_id=job.job_id,
            pid=self.rng.randrange(2000, 4_000_000),
            process_start_time=self.now,
            boot_id=f"boot-{self.boots}",
        )

    def end_job(self) -> c.Command | None:
        state = self.state
        rng = self.rng
        started = [j for j in state.jobs.attached if state.jobs.by_id[j].process is not None]
        if not started:
            return None
        job_id = rng.choice(started)
        job = state.jobs.by_id[job_id]
        if job.status != "running":
            return c.RecordExit(job_id=job_id, signal=15, stopped="request")
        if job.started_at is not None and self.now - job.started_at < MIN_RUN_SECONDS:
            return None
        if job.deadline is not None and rng.random() < 0.05:
            self.now = max(self.now, job.deadline)
            return c.RecordExit(job_id=job_id, signal=15, stopped="deadline")
        roll = rng.random()
        if roll < 0.8:
            return c.RecordExit(job_id=job_id, code=0)
        if roll < 0.99:
            return c.RecordExit(job_id=job_id, code=rng.choice([1, 2, 137]))
        return c.RecordExit(job_id=job_id)  # the wrapper was killed: no exit recorded

    def cancel_job(self) -> c.Command | None:
        """Cancel a queued or launched job, or delete it outright (which cancels it first)."""
        state = self.state
        candidates = list(state.jobs.queue) + list(state.jobs.attached)
        if not candidates:
            return None
        job_id = self.rng.choice(candidates)
        if self.rng.random() < 0.3:
            return c.DeleteJob(job_id=job_id)
        return c.CancelJob(job_id=job_id)

    def callback_step(self) -> c.Command | None:
        callbacks = self.state.callbacks
        for delivery in callbacks.in_flight():
            roll = self.rng.random()
            if roll < 0.75:
                outcome: c.AttemptOutcome = "delivered"
                status: int | None = 200
            elif roll < 0.95:
                outcome, status = "retry", 503
            else:
                outcome, status = "give_up", 400
            return c.RecordAttempt(
                callback_id=delivery.callback_id,
                attempt=delivery.attempts[-1].number,
                outcome=outcome,
                status=status,
            )
        while self.gave_up and self.rng.random() < 0.5:
            given_up = callbacks.by_id.get(self.gave_up.popleft())
            job = self.state.jobs.get(given_up.job_id) if given_up else None
            if given_up is not None and job is not None and not job.deleted:
                return c.RetryCallback(job_id=given_up.job_id, index=given_up.index)
        for delivery in callbacks.due(self.now + 3600):
            if delivery.due_at is not None:
                self.now = max(self.now, delivery.due_at)
            return c.StartAttempt(callback_id=delivery.callback_id)
        return None

    def cleanup_step(self) -> c.Command | None:
        pending = self.state.cleanup.pending
        if not pending:
            return None
        cleanup = next(iter(pending.values()))
        if cleanup.next_retry_at is not None:
            self.now = max(self.now, cleanup.next_retry_at)
        roll = self.rng.random()
        if cleanup.archive is None and cleanup.spec.job_id is not None and roll < 0.2:
            return c.RecordArchived(path=cleanup.path, archive=f"archive/{cleanup.spec.job_id}")
        if roll > 0.93:
            return c.FinishCleanup(path=cleanup.path, error="EBUSY: device or resource busy")
        return c.FinishCleanup(path=cleanup.path)

    def remove_resource(self) -> c.Command | None:
        state = self.state
        for container_id, container in state.resources.containers.items():
            job = state.jobs.get(container.job_id)
            if job is None or job.terminal:
                if self.rng.random() < 0.05:
                    return c.RecordRemoval(
                        kind="container", resource_id=container_id, error="removal in progress"
                    )
                return c.RecordRemoval(kind="container", resource_id=container_id)
        for network_id, network in state.resources.networks.items():
            job = state.jobs.get(network.job_id)
            if job is None or job.terminal:
                return c.RecordRemoval(kind="network", resource_id=network_id)
        if self.rng.random() < 0.01:
            return c.RecordOrphan(kind="container", resource_id=self.new_id("ctr"), job_id=None)
        return None

    def delete_job(self) -> c.Command | None:
        state = self.state
        while self.finished:
            job_id = self.finished.popleft()
            job = state.jobs.get(job_id)
            if job is None or job.deleted:
                continue
            staged = state.staging.of_job(job_id)
            if staged is not None:
                self.finished.appendleft(job_id)
                return c.RemoveStaging(path=staged, reason="deleted")
            return c.DeleteJob(job_id=job_id)
        return None

    def purge_job(self) -> c.Command | None:
        state = self.state
        while self.deleted:
            job = state.jobs.get(self.deleted[0])
            if job is None:
                self.deleted.popleft()
                continue
            if job.deleted_at is None or job.deleted_at + SETTINGS.retention_seconds > self.now:
                return None
            self.deleted.popleft()
            try:
                decide(state, c.PurgeJob(job_id=job.job_id), self.now)
            except DomainError:
                self.deleted.append(job.job_id)
                return None
            return c.PurgeJob(job_id=job.job_id)
        return None

    def repo_event(self) -> c.Command | None:
        state = self.state
        rng = self.rng
        name = rng.choice(REPOS)
        repo = state.repos.get(name)
        if repo is None:
            return None
        if repo.degraded is not None:
            return c.RestoreRepo(repo=name)
        roll = rng.random()
        if roll < 0.3:
            return c.DegradeRepo(repo=name, reason="clone missing: .git/HEAD not found")
        if roll < 0.6:
            jobs = f"-j{rng.randrange(1, 9)}"
            return c.ChangeRepoSettings(
                repo=name, settings=RepoSettings(index_command=["cidx", "index", jobs])
            )
        scratch = "scratch"
        if state.repos.get(scratch) is None:
            return c.RegisterRepo(
                repo=scratch, git_url="https://git.example.com/scratch.git", branch="main"
            )
        scratch_repo = state.repos.by_name[scratch]
        if scratch_repo.clone == "cloning":
            if rng.random() < 0.5:
                return c.FinishClone(repo=scratch, error="repository not found")
            return c.FinishClone(repo=scratch, commit=self.commit())
        if scratch_repo.clone == "failed":
            return c.RetryClone(repo=scratch)
        if not state.jobs.by_repo.get(scratch) and scratch not in state.locks.held:
            return c.UnregisterRepo(repo=scratch)
        return None

    def user_event(self) -> c.Command | None:
        state = self.state
        rng = self.rng
        roll = rng.random()
        if roll < 0.4:
            user_id = self.new_id("user")
            return c.AddUser(user_id=user_id, username=user_id, role="user", password_hash=None)
        temporary = [u for u in state.users.by_id if u.startswith("user-")]
        if roll < 0.7 and temporary:
            user_id = rng.choice(temporary)
            return c.IssueToken(
                token_hash=f"{rng.getrandbits(256):064x}",
                user_id=user_id,
                label="ci",
                ttl_seconds=3600.0,
            )
        busy = {j.spec.owner for j in state.jobs.by_id.values() if not j.terminal}
        idle = [u for u in temporary if u not in busy]
        if idle:
            return c.RemoveUser(user_id=rng.choice(idle))
        if state.users.tokens:
            return c.RevokeToken(token_hash=rng.choice(list(state.users.tokens)))
        return None

    def restart(self) -> c.Command | None:
        """A clean stop half the time (then a boot), a crash the other half (a boot with no
        stop before it, and the recovery's re-attachments and losses)."""
        clean = self.rng.random() < 0.5
        self.reboot = clean
        return c.StopServer() if clean else None


_ENDINGS: Final = (JobCompleted, JobFailed, JobTimedOut, JobCancelled, JobLost)


def _actor(command: c.Command) -> str:
    owner = getattr(command, "owner", None)
    return owner if isinstance(owner, str) else "system"


def realistic_history(events: int, seed: int) -> Iterator[Envelope]:
    """The first ``events`` events of seed ``seed``'s simulated history."""
    return Simulation(seed).history(events)
