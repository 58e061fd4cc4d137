"""A deterministic, realistic server history, for the replay benchmark and the golden fixture.

Jobs arrive on several repositories and go through their whole lifecycle: queue, wait for a
repository lock or join a batch, preparation under the lock, running, output checkpoints, an
ending; then webhooks with retries, workspace cleanup (sometimes failing first), container
removal and eventually deletion. The server occasionally stops cleanly or crashes, and recovery
re-attaches or loses running jobs. Every prefix of the history satisfies ``invariants.check``.

Randomness is a ``random.Random(seed)``: the same ``(n_events, seed)`` always gives the same
events, in any process.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterator
from typing import Final

from projections.callbacks import MAX_CALLBACK_ATTEMPTS
from projections.envelope import SCHEMA_VERSION, Envelope
from projections.events import (
    BatchEnded,
    BatchFormed,
    BatchPhaseChanged,
    CallbackAttemptFailed,
    CallbackAttemptStarted,
    CallbackAttemptSucceeded,
    CallbackGaveUp,
    CallbackScheduled,
    CallbackSpec,
    CleanupCompleted,
    CleanupFailed,
    CleanupMarked,
    ContainerCreated,
    ContainerRemoved,
    Event,
    JobBatched,
    JobCancelled,
    JobCancelRequested,
    JobCompleted,
    JobCreated,
    JobDeleted,
    JobEnqueued,
    JobFailed,
    JobFileStaged,
    JobLost,
    JobOutputCheckpoint,
    JobPreparing,
    JobProcessStarted,
    JobReattached,
    JobTimedOut,
    JobWorkspaceCreated,
    LockAcquired,
    LockReleased,
    NetworkCreated,
    NetworkRemoved,
    RecoveryCompleted,
    RecoveryMetrics,
    RepoCloneCompleted,
    RepoCloneStarted,
    RepoRegistered,
    RepoSettingsChanged,
    ServerStarted,
    ServerStopping,
    SnapshotTaken,
    StagingCreated,
    StagingRemoved,
    TokenIssued,
    TokenRevoked,
    UserAdded,
    WaitEnded,
    WaitStarted,
)

START_TS: Final = 1_700_000_000.0
SNAPSHOT_EVERY: Final = 10_000
REPOS: Final = ("api", "web", "infra", "docs", "mobile", "ml")
AGENTS: Final = ("claude-code", "gemini-cli", "codex", "aider")
USERS: Final = ("alice", "bob", "carol", "dave")
MAX_BACKLOG: Final = 40
MAX_RUNNING: Final = 48
RETAINED_JOBS: Final = 300
"""Finished jobs kept before the oldest are deleted, as a retention policy would."""


class _Job:
    __slots__ = ("batch", "callbacks", "cancel", "containers", "offset", "repo", "staging")

    def __init__(self, repo: str, callbacks: list[CallbackSpec], staging: str | None) -> None:
        self.repo = repo
        self.callbacks = callbacks
        self.staging = staging
        self.batch: str | None = None
        self.containers: list[str] = []
        self.offset = 0
        self.cancel = False


class _Prep:
    """A batch preparing a repository under its lock."""

    __slots__ = ("batch", "holder", "members")

    def __init__(self, holder: str, batch: str, members: list[str]) -> None:
        self.holder = holder
        self.batch = batch
        self.members = members


class _Callback:
    __slots__ = ("attempt", "due", "in_flight", "job")

    def __init__(self, job: str, due: float) -> None:
        self.job = job
        self.due = due
        self.attempt = 0
        self.in_flight = False


class _Simulator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.now = START_TS
        self.out: deque[Envelope] = deque()
        self.emitted = 0
        self.ids = 0
        self.boot = "boot-0"
        self.jobs: dict[str, _Job] = {}
        self.queued: dict[str, None] = {}
        self.waiting: dict[str, dict[str, None]] = {repo: {} for repo in REPOS}
        self.prep: dict[str, _Prep] = {}
        self.generation: dict[str, int] = dict.fromkeys(REPOS, 0)
        self.running: dict[str, None] = {}
        self.batch_open: dict[str, int] = {}
        self.callbacks: dict[str, _Callback] = {}
        self.open_callbacks: dict[str, int] = {}
        self.cleanups: dict[str, None] = {}
        self.finished: deque[str] = deque()
        self.tokens: list[str] = []
        self.actions: list[Callable[[], bool]] = [
            self.submit,
            self.dispatch,
            self.finish_prep,
            self.checkpoint,
            self.finish,
            self.cancel_queued,
            self.callback_attempt,
            self.callback_outcome,
            self.cleanup,
            self.delete,
            self.admin,
            self.restart,
        ]
        self.weights = [10, 12, 6, 14, 9, 0.4, 8, 8, 12, 12, 0.05, 0.004]

    # -- output ----------------------------------------------------------------------------

    def emit(self, event: Event, actor: str = "system", request: str | None = None) -> None:
        self.now += self.rng.random() * 0.4
        self.out.append(Envelope(SCHEMA_VERSION, self.now, actor, request, event))
        self.emitted += 1
        if self.emitted % SNAPSHOT_EVERY == 0:
            self.emitted += 1
            snapshot = SnapshotTaken(seq=self.emitted - 1, file=f"{self.emitted - 1:020d}.snap")
            self.out.append(Envelope(SCHEMA_VERSION, self.now, "system", None, snapshot))

    def new_id(self, prefix: str) -> str:
        self.ids += 1
        return f"{prefix}-{self.ids:08d}"

    def history(self) -> Iterator[Envelope]:
        self.setup()
        choices = self.rng.choices
        actions = self.actions
        weights = self.weights
        while True:
            while self.out:
                yield self.out.popleft()
            for action in choices(actions, weights, k=16):
                if action():
                    break

    # -- actions (each returns whether it applied) -----------------------------------------

    def setup(self) -> None:
        self.emit(ServerStarted(boot_id=self.boot, pid=1000, version="0.1.0"))
        for user in USERS:
            self.emit(UserAdded(user_id=user, name=user.title(), role="user"), "system")
            self.issue_token(user)
        for repo in REPOS:
            self.emit(
                RepoRegistered(
                    repo=repo,
                    git_url=f"https://git.example.com/acme/{repo}.git",
                    branch="main",
                    settings={"index": "cidx", "timeout": "3600"},
                )
            )
            self.emit(RepoCloneStarted(repo=repo))
            self.emit(RepoCloneCompleted(repo=repo, commit=f"{self.rng.getrandbits(160):040x}"))
        self.emit(RecoveryCompleted(metrics=_metrics(0, 0, 0)), "recovery")

    def issue_token(self, user: str) -> None:
        token = f"{self.rng.getrandbits(256):064x}"
        self.tokens.append(token)
        self.emit(TokenIssued(token_hash=token, user_id=user, label="cli", expires_at=None))

    def submit(self) -> bool:
        backlog = len(self.queued) + sum(map(len, self.waiting.values()))
        if backlog >= MAX_BACKLOG or len(self.running) >= MAX_RUNNING:
            return False
        rng = self.rng
        job_id = self.new_id("job")
        owner = rng.choice(USERS)
        request = self.new_id("req")
        repo = rng.choice(REPOS)
        callbacks = (
            [CallbackSpec(url=f"https://hooks.example.com/{owner}", events=["completed", "failed"])]
            if rng.random() < 0.6
            else []
        )
        staging = f"staging/{job_id}" if rng.random() < 0.3 else None
        self.jobs[job_id] = _Job(repo, callbacks, staging)
        self.emit(
            JobCreated(
                job_id=job_id,
                owner=owner,
                prompt=f"Fix issue #{rng.randrange(1, 5000)} in {repo}",
                repo=repo,
                agent=rng.choice(AGENTS),
                options={"timeout": "3600", "model": "default"},
                callbacks=callbacks,
                idempotency_key_hash=f"{rng.getrandbits(128):032x}" if rng.random() < 0.5 else None,
            ),
            owner,
            request,
        )
        if staging is not None:
            self.emit(StagingCreated(path=staging, job_id=job_id), owner, request)
            self.emit(
                JobFileStaged(job_id=job_id, name="spec.md", size=2048, sha256="ab" * 32),
                owner,
                request,
            )
        self.emit(JobEnqueued(job_id=job_id), owner, request)
        self.queued[job_id] = None
        return True

    def dispatch(self) -> bool:
        job_id = next(iter(self.queued), None)
        if job_id is None:
            return False
        del self.queued[job_id]
        repo = self.jobs[job_id].repo
        prep = self.prep.get(repo)
        if prep is None:
            self.acquire(repo, job_id)
        elif self.rng.random() < 0.5:
            self.emit(JobBatched(job_id=job_id, batch_id=prep.batch))
            self.emit(JobPreparing(job_id=job_id))
            prep.members.append(job_id)
            self.jobs[job_id].batch = prep.batch
        else:
            self.emit(WaitStarted(repo=repo, job_id=job_id))
            self.waiting[repo][job_id] = None
        return True

    def acquire(self, repo: str, holder: str) -> None:
        self.generation[repo] += 1
        self.emit(LockAcquired(repo=repo, job_id=holder, generation=self.generation[repo]))
        self.emit(JobPreparing(job_id=holder))
        waiters = self.waiting[repo]
        members = [holder]
        for waiter in list(waiters)[:3]:
            del waiters[waiter]
            self.emit(WaitEnded(repo=repo, job_id=waiter, reason="batched"))
            members.append(waiter)
        batch = self.new_id("batch")
        self.emit(BatchFormed(batch_id=batch, repo=repo, job_ids=list(members)))
        for member in members[1:]:
            self.emit(JobPreparing(job_id=member))
        self.emit(BatchPhaseChanged(batch_id=batch, phase="preparing"))
        for member in members:
            self.jobs[member].batch = batch
        self.prep[repo] = _Prep(holder, batch, members)

    def finish_prep(self) -> bool:
        if not self.prep:
            return False
        repo = self.rng.choice(list(self.prep))
        prep = self.prep.pop(repo)
        rng = self.rng
        for member in prep.members:
            job = self.jobs[member]
            self.emit(JobWorkspaceCreated(job_id=member, path=f"workspaces/{member}"))
            if rng.random() < 0.3:
                container = self.new_id("ctr")
                job.containers.append(container)
                self.emit(
                    ContainerCreated(container_id=container, name=f"cidx-{member}", job_id=member)
                )
        network = None
        if rng.random() < 0.2:
            network = self.new_id("net")
            self.emit(
                NetworkCreated(network_id=network, name=f"cidx-{prep.batch}", job_id=prep.holder)
            )
        self.emit(BatchPhaseChanged(batch_id=prep.batch, phase="ready"))
        self.emit(LockReleased(repo=repo, job_id=prep.holder, reason="prepared"))
        if network is not None:
            self.emit(NetworkRemoved(network_id=network))
        for member in prep.members:
            self.emit(
                JobProcessStarted(
                    job_id=member,
                    pid=rng.randrange(2000, 4_000_000),
                    process_start_time=self.now,
                    boot_id=self.boot,
                    output_path=f"workspaces/{member}/output.log",
                    heartbeat_path=f"workspaces/{member}/heartbeat",
                )
            )
            self.running[member] = None
            staging = self.jobs[member].staging
            if staging is not None:
                self.emit(StagingRemoved(path=staging, reason="moved to workspace"))
                self.jobs[member].staging = None
        self.emit(BatchPhaseChanged(batch_id=prep.batch, phase="executing"))
        self.batch_open[prep.batch] = len(prep.members)
        waiter = next(iter(self.waiting[repo]), None)
        if waiter is not None:
            del self.waiting[repo][waiter]
            self.acquire(repo, waiter)
        return True

    def checkpoint(self) -> bool:
        if not self.running:
            return False
        job_id = self.rng.choice(list(self.running))
        job = self.jobs[job_id]
        job.offset += self.rng.randrange(512, 65536)
        self.emit(JobOutputCheckpoint(job_id=job_id, offset=job.offset))
        return True

    def finish(self) -> bool:
        if not self.running:
            return False
        rng = self.rng
        job_id = rng.choice(list(self.running))
        job = self.jobs[job_id]
        roll = rng.random()
        if job.cancel:
            self.end(job_id, JobCancelled(job_id=job_id), "cancelled")
        elif roll < 0.05:
            job.cancel = True
            self.emit(JobCancelRequested(job_id=job_id), "alice", self.new_id("req"))
        elif roll < 0.85:
            self.end(job_id, JobCompleted(job_id=job_id, exit_code=0), "completed")
        elif roll < 0.92:
            self.end(job_id, JobCompleted(job_id=job_id, exit_code=1), "completed")
        elif roll < 0.97:
            self.end(job_id, JobFailed(job_id=job_id, reason="agent crashed"), "failed")
        else:
            self.end(job_id, JobTimedOut(job_id=job_id), "timed_out")
        return True

    def end(self, job_id: str, event: Event, outcome: str, actor: str = "system") -> None:
        """Everything that follows a running job's end: webhooks, cleanup, batch bookkeeping."""
        job = self.jobs[job_id]
        self.running.pop(job_id, None)
        self.emit(event, actor)
        for spec in job.callbacks:
            if outcome in spec.events:
                callback_id = self.new_id("cb")
                self.callbacks[callback_id] = _Callback(job_id, self.now)
                self.open_callbacks[job_id] = self.open_callbacks.get(job_id, 0) + 1
                self.emit(
                    CallbackScheduled(
                        callback_id=callback_id,
                        job_id=job_id,
                        url=spec.url,
                        event=outcome,
                        due_at=self.now,
                    ),
                    actor,
                )
        for container in job.containers:
            self.emit(ContainerRemoved(container_id=container), actor)
        job.containers.clear()
        if job.batch is not None:
            path = f"workspaces/{job_id}"
            self.emit(CleanupMarked(path=path, reason=f"job {outcome}", job_id=job_id), actor)
            self.cleanups[path] = None
            self.batch_open[job.batch] -= 1
            if self.batch_open[job.batch] == 0:
                del self.batch_open[job.batch]
                self.emit(BatchEnded(batch_id=job.batch), actor)
        if job.staging is not None:
            self.emit(StagingRemoved(path=job.staging, reason=f"job {outcome}"), actor)
            job.staging = None
        self.finished.append(job_id)

    def cancel_queued(self) -> bool:
        job_id = next(iter(self.queued), None)
        if job_id is not None:
            del self.queued[job_id]
        else:
            waiting = [repo for repo in REPOS if self.waiting[repo]]
            if not waiting:
                return False
            job_id = next(iter(self.waiting[waiting[0]]))
            del self.waiting[waiting[0]][job_id]
        owner = "bob"
        request = self.new_id("req")
        self.emit(JobCancelRequested(job_id=job_id), owner, request)
        self.end(job_id, JobCancelled(job_id=job_id), "cancelled", owner)
        return True

    def callback_attempt(self) -> bool:
        for callback_id, cb in self.callbacks.items():
            if not cb.in_flight and cb.due <= self.now:
                cb.attempt += 1
                cb.in_flight = True
                self.emit(CallbackAttemptStarted(callback_id=callback_id, attempt=cb.attempt))
                return True
        return False

    def callback_outcome(self) -> bool:
        callback_id = next((cid for cid, cb in self.callbacks.items() if cb.in_flight), None)
        if callback_id is None:
            return False
        cb = self.callbacks[callback_id]
        cb.in_flight = False
        roll = self.rng.random()
        if roll < 0.75:
            self.emit(
                CallbackAttemptSucceeded(callback_id=callback_id, attempt=cb.attempt, status=200)
            )
            self.close_callback(callback_id)
        elif roll < 0.78:
            self.emit(
                CallbackAttemptFailed(
                    callback_id=callback_id,
                    attempt=cb.attempt,
                    status=404,
                    error=None,
                    next_retry_at=None,
                )
            )
            self.emit(CallbackGaveUp(callback_id=callback_id, reason="receiver answered 404"))
            self.close_callback(callback_id)
        elif cb.attempt >= MAX_CALLBACK_ATTEMPTS:
            self.emit(
                CallbackAttemptFailed(
                    callback_id=callback_id,
                    attempt=cb.attempt,
                    status=503,
                    error=None,
                    next_retry_at=None,
                )
            )
            self.emit(CallbackGaveUp(callback_id=callback_id, reason="attempts exhausted"))
            self.close_callback(callback_id)
        else:
            cb.due = self.now + 2.0**cb.attempt
            network = roll < 0.9
            self.emit(
                CallbackAttemptFailed(
                    callback_id=callback_id,
                    attempt=cb.attempt,
                    status=None if network else 502,
                    error="connection refused" if network else None,
                    next_retry_at=cb.due,
                )
            )
        return True

    def close_callback(self, callback_id: str) -> None:
        job_id = self.callbacks.pop(callback_id).job
        self.open_callbacks[job_id] -= 1
        if not self.open_callbacks[job_id]:
            del self.open_callbacks[job_id]

    def cleanup(self) -> bool:
        path = next(iter(self.cleanups), None)
        if path is None:
            return False
        if self.rng.random() < 0.9:
            del self.cleanups[path]
            self.emit(CleanupCompleted(path=path))
        else:
            self.cleanups[path] = self.cleanups.pop(path)
            self.emit(CleanupFailed(path=path, error="EBUSY: device or resource busy"))
        return True

    def delete(self) -> bool:
        if len(self.finished) <= RETAINED_JOBS:
            return False
        job_id = self.finished[0]
        batch = self.jobs[job_id].batch
        if job_id in self.open_callbacks or (batch is not None and batch in self.batch_open):
            self.finished.rotate(-1)
            return False
        self.finished.popleft()
        del self.jobs[job_id]
        self.emit(JobDeleted(job_id=job_id), "system", self.new_id("req"))
        return True

    def admin(self) -> bool:
        rng = self.rng
        if rng.random() < 0.5:
            repo = rng.choice(REPOS)
            timeout = str(rng.choice((1800, 3600, 7200)))
            self.emit(
                RepoSettingsChanged(repo=repo, settings={"index": "cidx", "timeout": timeout}),
                "alice",
            )
        else:
            token = self.tokens.pop(0)
            self.emit(TokenRevoked(token_hash=token), "alice", self.new_id("req"))
            self.issue_token(rng.choice(USERS))
        return True

    def restart(self) -> bool:
        """A clean restart or a crash, then the recovery that follows every start."""
        rng = self.rng
        crashed = rng.random() < 0.6
        if not crashed:
            self.emit(ServerStopping())
        self.boot = self.new_id("boot")
        self.emit(ServerStarted(boot_id=self.boot, pid=rng.randrange(1000, 60000), version="0.1.0"))
        reattached = lost = resumed = 0
        for job_id in list(self.running):
            if rng.random() < 0.9:
                reattached += 1
                self.emit(JobReattached(job_id=job_id, boot_id=self.boot), "recovery")
            else:
                lost += 1
                event = JobLost(job_id=job_id, reason="process gone after restart")
                self.end(job_id, event, "lost", "recovery")
        for cb in self.callbacks.values():
            if cb.in_flight:
                cb.in_flight = False
                resumed += 1
        self.emit(RecoveryCompleted(metrics=_metrics(reattached, lost, resumed)), "recovery")
        return True


def _metrics(reattached: int, lost: int, resumed: int) -> RecoveryMetrics:
    return RecoveryMetrics(
        events_replayed=0,
        snapshot_seq=None,
        bytes_cut=0,
        jobs_reattached=reattached,
        jobs_lost=lost,
        locks_released=0,
        callbacks_resumed=resumed,
        cleanups_resumed=0,
        orphans_removed=0,
        duration_s=0.0,
    )


def realistic_history(n_events: int, seed: int = 0) -> Iterator[Envelope]:
    """The first ``n_events`` envelopes of the history drawn from ``seed`` (seq = index + 1)."""
    history = _Simulator(seed).history()
    for _ in range(n_events):
        yield next(history)
