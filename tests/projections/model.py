"""A small command model of the server that only ever emits valid event sequences.

It is deliberately independent of the projections (its own bookkeeping, no queries on
``State``): the stateful test drives it with random commands and checks that the folds agree
with a history that is valid by construction.
"""

from __future__ import annotations

from projections.callbacks import MAX_CALLBACK_ATTEMPTS
from projections.events import (
    BatchEnded,
    BatchFormed,
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
    JobLost,
    JobPreparing,
    JobProcessStarted,
    JobReattached,
    JobTimedOut,
    JobWorkspaceCreated,
    LockAcquired,
    LockReleased,
    RepoCloneCompleted,
    RepoCloneStarted,
    RepoRegistered,
    ServerStarted,
    ServerStopping,
    WaitStarted,
)

REPOS = ("api", "web")
OUTCOMES = ("completed", "failed", "timed_out", "lost")


class Model:
    def __init__(self) -> None:
        self.counter = 0
        self.boot = "boot-0"
        self.registered: list[str] = []
        self.repo_of: dict[str, str] = {}
        self.hooks: dict[str, bool] = {}
        self.queued: list[str] = []
        self.waiting: dict[str, list[str]] = {r: [] for r in REPOS}
        self.holder: dict[str, tuple[str, str]] = {}
        self.generation: dict[str, int] = dict.fromkeys(REPOS, 0)
        self.preparing: dict[str, list[str]] = {}
        self.batch_of: dict[str, str] = {}
        self.batch_open: dict[str, int] = {}
        self.running: list[str] = []
        self.finished: list[str] = []
        self.callbacks: dict[str, int] = {}
        self.callback_job: dict[str, str] = {}
        self.in_flight: list[str] = []
        self.cleanups: list[str] = []
        self.containers: list[str] = []

    def _id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def start_server(self, clean: bool) -> list[Event]:
        """A (re)start: running agents are re-attached or lost, in-flight webhooks retried."""
        events: list[Event] = [ServerStopping()] if clean else []
        self.boot = self._id("boot-")
        events.append(ServerStarted(boot_id=self.boot, pid=self.counter, version="test"))
        for index, job_id in enumerate(list(self.running)):
            if index % 2:
                events.extend(self._end(job_id, "lost"))
            else:
                events.append(JobReattached(job_id=job_id, boot_id=self.boot))
        self.in_flight.clear()
        return events

    def register(self, repo: str) -> list[Event]:
        if repo in self.registered:
            return []
        self.registered.append(repo)
        return [
            RepoRegistered(repo=repo, git_url=f"git@x:{repo}", branch="main", settings={}),
            RepoCloneStarted(repo=repo),
            RepoCloneCompleted(repo=repo, commit="c0ffee"),
        ]

    def create(self, repo_index: int, with_hook: bool) -> list[Event]:
        if not self.registered:
            return []
        repo = self.registered[repo_index % len(self.registered)]
        job_id = self._id("job-")
        self.repo_of[job_id] = repo
        self.hooks[job_id] = with_hook
        self.queued.append(job_id)
        hooks = [CallbackSpec(url="https://hook", events=list(OUTCOMES))] if with_hook else []
        return [
            JobCreated(
                job_id=job_id,
                owner="alice",
                prompt="p",
                repo=repo,
                agent="codex",
                options={},
                callbacks=hooks,
                idempotency_key_hash=None,
            ),
            JobEnqueued(job_id=job_id),
        ]

    def dispatch(self, join: bool) -> list[Event]:
        """Pick the head of the run queue: take the lock, join the batch preparing, or wait."""
        if not self.queued:
            return []
        job_id = self.queued.pop(0)
        repo = self.repo_of[job_id]
        if repo not in self.holder:
            return self._acquire(repo, job_id)
        if join:
            batch = self.holder[repo][1]
            self.preparing[repo].append(job_id)
            self.batch_of[job_id] = batch
            return [JobBatched(job_id=job_id, batch_id=batch), JobPreparing(job_id=job_id)]
        self.waiting[repo].append(job_id)
        return [WaitStarted(repo=repo, job_id=job_id)]

    def _acquire(self, repo: str, job_id: str) -> list[Event]:
        self.generation[repo] += 1
        batch = self._id("batch-")
        self.holder[repo] = (job_id, batch)
        self.preparing[repo] = [job_id]
        self.batch_of[job_id] = batch
        return [
            LockAcquired(repo=repo, job_id=job_id, generation=self.generation[repo]),
            JobPreparing(job_id=job_id),
            BatchFormed(batch_id=batch, repo=repo, job_ids=[job_id]),
        ]

    def prepared(self, repo_index: int, with_container: bool) -> list[Event]:
        """The repository is ready: release its lock, start every member, serve the next waiter."""
        if not self.holder:
            return []
        repo = sorted(self.holder)[repo_index % len(self.holder)]
        holder, batch = self.holder.pop(repo)
        members = self.preparing.pop(repo)
        events: list[Event] = [LockReleased(repo=repo, job_id=holder, reason="prepared")]
        for job_id in members:
            events.append(JobWorkspaceCreated(job_id=job_id, path=f"ws/{job_id}"))
            if with_container:
                container = f"ctr-{job_id}"
                self.containers.append(container)
                events.append(
                    ContainerCreated(container_id=container, name=container, job_id=job_id)
                )
            events.append(
                JobProcessStarted(
                    job_id=job_id,
                    pid=self.counter,
                    process_start_time=1.5,
                    boot_id=self.boot,
                    output_path=f"ws/{job_id}/out",
                    heartbeat_path=f"ws/{job_id}/hb",
                )
            )
            self.running.append(job_id)
        self.batch_open[batch] = len(members)
        if self.waiting[repo]:
            events.extend(self._acquire(repo, self.waiting[repo].pop(0)))
        return events

    def finish(self, index: int, outcome_index: int) -> list[Event]:
        if not self.running:
            return []
        job_id = self.running[index % len(self.running)]
        return self._end(job_id, OUTCOMES[outcome_index % len(OUTCOMES)])

    def _end(self, job_id: str, outcome: str) -> list[Event]:
        ending: dict[str, Event] = {
            "completed": JobCompleted(job_id=job_id, exit_code=0),
            "failed": JobFailed(job_id=job_id, reason="r"),
            "timed_out": JobTimedOut(job_id=job_id),
            "lost": JobLost(job_id=job_id, reason="gone"),
            "cancelled": JobCancelled(job_id=job_id),
        }
        events = [ending[outcome]]
        if job_id in self.running:
            self.running.remove(job_id)
            path = f"ws/{job_id}"
            self.cleanups.append(path)
            events.append(CleanupMarked(path=path, reason=outcome, job_id=job_id))
        if self.hooks[job_id] and outcome in OUTCOMES:
            callback_id = self._id("cb-")
            self.callbacks[callback_id] = 0
            self.callback_job[callback_id] = job_id
            events.append(
                CallbackScheduled(
                    callback_id=callback_id,
                    job_id=job_id,
                    url="https://hook",
                    event=outcome,
                    due_at=1.0,
                )
            )
        batch = self.batch_of.get(job_id)
        if batch is not None and batch in self.batch_open:
            self.batch_open[batch] -= 1
            if not self.batch_open[batch]:
                del self.batch_open[batch]
                events.append(BatchEnded(batch_id=batch))
        self.finished.append(job_id)
        return events

    def cancel(self) -> list[Event]:
        """Cancel a job that has not started: the head of the run queue, else a waiter."""
        if self.queued:
            job_id = self.queued.pop(0)
        else:
            repo = next((r for r in REPOS if self.waiting[r]), None)
            if repo is None:
                return []
            job_id = self.waiting[repo].pop(0)
        return [JobCancelRequested(job_id=job_id), *self._end(job_id, "cancelled")]

    def callback_attempt(self) -> list[Event]:
        callback_id = next((c for c in self.callbacks if c not in self.in_flight), None)
        if callback_id is None:
            return []
        self.callbacks[callback_id] += 1
        self.in_flight.append(callback_id)
        return [
            CallbackAttemptStarted(callback_id=callback_id, attempt=self.callbacks[callback_id])
        ]

    def callback_outcome(self, success: bool) -> list[Event]:
        if not self.in_flight:
            return []
        callback_id = self.in_flight.pop(0)
        attempt = self.callbacks[callback_id]
        if success:
            del self.callbacks[callback_id]
            return [CallbackAttemptSucceeded(callback_id=callback_id, attempt=attempt, status=200)]
        retry = attempt < MAX_CALLBACK_ATTEMPTS
        events: list[Event] = [
            CallbackAttemptFailed(
                callback_id=callback_id,
                attempt=attempt,
                status=None,
                error="refused",
                next_retry_at=2.0**attempt if retry else None,
            )
        ]
        if not retry:
            del self.callbacks[callback_id]
            events.append(CallbackGaveUp(callback_id=callback_id, reason="exhausted"))
        return events

    def cleanup(self, success: bool) -> list[Event]:
        if not self.cleanups:
            return []
        if success:
            return [CleanupCompleted(path=self.cleanups.pop(0))]
        return [CleanupFailed(path=self.cleanups[0], error="EBUSY")]

    def remove_container(self) -> list[Event]:
        if not self.containers:
            return []
        return [ContainerRemoved(container_id=self.containers.pop(0))]

    def delete(self) -> list[Event]:
        """Delete the oldest finished job once its batch is over and its webhooks are done."""
        notifying = {self.callback_job[c] for c in self.callbacks}
        for job_id in self.finished:
            if self.batch_of.get(job_id) not in self.batch_open and job_id not in notifying:
                self.finished.remove(job_id)
                return [JobDeleted(job_id=job_id)]
        return []
