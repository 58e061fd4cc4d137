"""Unit tests of each projection's important transitions and of the queries the service uses."""

from __future__ import annotations

import pytest

from projections.callbacks import MAX_CALLBACK_ATTEMPTS
from projections.events import (
    BatchEnded,
    BatchFormed,
    BatchPhaseChanged,
    CallbackAttemptFailed,
    CallbackAttemptStarted,
    CallbackAttemptSucceeded,
    CallbackGaveUp,
    CallbackScheduled,
    CleanupCompleted,
    CleanupFailed,
    CleanupMarked,
    ContainerCreated,
    ContainerRemoved,
    Event,
    JobBatched,
    JobCancelled,
    JobCompleted,
    JobCreated,
    JobDeleted,
    JobEnqueued,
    JobFailed,
    JobFileStaged,
    JobFileUnstaged,
    JobLost,
    JobOutputCheckpoint,
    JobPreparing,
    JobProcessStarted,
    JobReattached,
    LockAcquired,
    LockReleased,
    NetworkCreated,
    RecoveryCompleted,
    RecoveryMetrics,
    RepoCloneCompleted,
    RepoCloneFailed,
    RepoCloneStarted,
    RepoDegraded,
    RepoRegistered,
    RepoSettingsChanged,
    RepoUnregistered,
    ServerStarted,
    ServerStopping,
    StagingCreated,
    StagingRemoved,
    TokenIssued,
    TokenRevoked,
    UserAdded,
    UserRemoved,
    WaitEnded,
    WaitStarted,
)
from projections.state import State, evolve
from projections.stats import WINDOW
from tests.projections.helpers import created, env, fold


def _started(job_id: str, pid: int = 4242) -> JobProcessStarted:
    return JobProcessStarted(
        job_id=job_id,
        pid=pid,
        process_start_time=123.5,
        boot_id="boot-a",
        output_path=f"ws/{job_id}/out",
        heartbeat_path=f"ws/{job_id}/hb",
    )


def test_job_walks_its_lifecycle() -> None:
    state = fold([created("j1"), JobEnqueued(job_id="j1")])
    job = state.jobs.by_id["j1"]
    assert (job.status, job.enqueued_seq) == ("queued", 2)
    statuses = []
    steps: tuple[list[Event], ...] = (
        [WaitStarted(repo="api", job_id="j1")],
        [LockAcquired(repo="api", job_id="j1", generation=1), JobPreparing(job_id="j1")],
        [_started("j1"), JobOutputCheckpoint(job_id="j1", offset=900)],
    )
    for step in steps:
        fold(step, state)
        statuses.append(job.status)
    assert statuses == ["waiting", "preparing", "running"]
    assert state.jobs.running_processes() == [("j1", job.process)]
    assert job.process is not None and job.process.pid == 4242
    assert job.output_offset == 900
    fold(
        [JobReattached(job_id="j1", boot_id="boot-b"), JobCompleted(job_id="j1", exit_code=3)],
        state,
    )
    assert (job.status, job.exit_code, job.reattach_count, job.terminal) == (
        "completed",
        3,
        1,
        True,
    )
    assert state.jobs.running_processes() == []


@pytest.mark.parametrize(
    ("event", "status", "reason"),
    [
        (JobFailed(job_id="j1", reason="boom"), "failed", "boom"),
        (JobLost(job_id="j1", reason="pid gone"), "lost", "pid gone"),
        (JobCancelled(job_id="j1"), "cancelled", None),
    ],
)
def test_terminal_events_end_running_jobs(
    event: JobFailed | JobLost | JobCancelled, status: str, reason: str | None
) -> None:
    state = fold([created("j1"), _started("j1"), env(event, ts=1010.0)])
    job = state.jobs.by_id["j1"]
    assert (job.status, job.reason, job.ended_ts) == (status, reason, 1010.0)
    assert "j1" not in state.jobs.running


def test_staged_files_and_deletion_tombstone() -> None:
    staged = JobFileStaged(job_id="j1", name="a.md", size=3, sha256="00")
    state = fold(
        [created("j1"), staged, JobFileStaged(job_id="j1", name="b.md", size=1, sha256="11")]
    )
    fold([JobFileUnstaged(job_id="j1", name="b.md")], state)
    assert state.jobs.by_id["j1"].files == {"a.md": staged}
    fold([JobDeleted(job_id="j1")], state)
    assert state.jobs.get("j1") is None
    assert state.jobs.deleted == {"j1": 5}


def test_events_about_unknown_jobs_are_ignored() -> None:
    state = fold([JobPreparing(job_id="ghost"), _started("ghost"), JobDeleted(job_id="ghost")])
    assert state.jobs.by_id == {}
    assert state.jobs.deleted == {}


def test_queue_order_is_enqueue_seq_and_picks_leave_it() -> None:
    state = fold([created(j) for j in ("a", "b", "c", "d")])
    fold([JobEnqueued(job_id=j) for j in ("c", "a", "d", "b")], state)
    assert state.queue.next_runnable() == "c"
    assert [state.queue.position(j) for j in ("c", "a", "d", "b", "zz")] == [1, 2, 3, 4, None]
    fold([WaitStarted(repo="api", job_id="c"), JobPreparing(job_id="a")], state)
    assert list(state.queue.entries) == ["d", "b"]
    fold([JobEnqueued(job_id="d")], state)
    assert list(state.queue.entries) == ["b", "d"]
    fold([BatchFormed(batch_id="B", repo="api", job_ids=["b"]), JobCancelled(job_id="d")], state)
    assert state.queue.next_runnable() is None


def test_wait_queue_is_fifo_and_lock_acquisition_leaves_it() -> None:
    state = fold([created(j) for j in ("a", "b", "c")])
    fold([WaitStarted(repo="api", job_id=j) for j in ("b", "a", "c")], state)
    assert state.waits.waiters("api") == ["b", "a", "c"]
    fold([LockAcquired(repo="api", job_id="b", generation=1)], state)
    assert state.waits.next_waiter("api") == "a"
    fold([WaitEnded(repo="api", job_id="a", reason="batched"), JobCancelled(job_id="c")], state)
    assert state.waits.waiters("api") == []
    assert state.waits.queues == {}
    assert state.waits.where == {}


def test_lock_holder_generation_and_release() -> None:
    state = fold([created("a"), LockAcquired(repo="api", job_id="a", generation=4)])
    holder = state.locks.holder("api")
    assert holder is not None
    assert (holder.job_id, holder.generation, holder.seq) == ("a", 4, 2)
    assert state.locks.held_by("a") == ["api"]
    fold([LockReleased(repo="api", job_id="a", reason="prepared")], state)
    assert state.locks.holder("api") is None
    assert state.locks.generations == {"api": 4}
    assert state.locks.conflicts == []


def test_lock_conflicts_are_recorded_not_hidden() -> None:
    state = fold(
        [
            LockAcquired(repo="api", job_id="a", generation=1),
            LockAcquired(repo="api", job_id="b", generation=1),
            LockReleased(repo="api", job_id="a", reason="x"),
        ]
    )
    assert len(state.locks.conflicts) == 3
    assert "acquired by 'b' while held by 'a'" in state.locks.conflicts[0]
    assert "generation 1, not above 1" in state.locks.conflicts[1]
    assert "released by 'a', holder is 'b'" in state.locks.conflicts[2]


def test_batches_form_grow_change_phase_and_end() -> None:
    state = fold([created(j) for j in ("a", "b", "c")])
    fold(
        [
            BatchFormed(batch_id="B", repo="api", job_ids=["a", "b"]),
            JobBatched(job_id="c", batch_id="B"),
        ],
        state,
    )
    batch = state.batches.active["B"]
    assert (batch.job_ids, batch.phase) == (["a", "b", "c"], "waiting")
    assert {state.jobs.by_id[j].batch_id for j in "abc"} == {"B"}
    assert state.jobs.by_id["c"].status == "batched"
    fold([BatchPhaseChanged(batch_id="B", phase="executing")], state)
    assert state.batches.of_repo("api") == [batch]
    assert batch.phase == "executing"
    fold([BatchEnded(batch_id="B")], state)
    assert (state.batches.active, state.batches.ended) == ({}, 1)


def _scheduled(cid: str, due: float, job: str = "j1") -> CallbackScheduled:
    return CallbackScheduled(
        callback_id=cid, job_id=job, url="https://h", event="completed", due_at=due
    )


def test_callbacks_due_retry_and_outcomes() -> None:
    state = fold([_scheduled("c1", 20.0), _scheduled("c2", 10.0), _scheduled("c3", 30.0)])
    assert [cb.spec.callback_id for cb in state.callbacks.due(25.0)] == ["c2", "c1"]
    fold([CallbackAttemptStarted(callback_id="c2", attempt=1)], state)
    assert [cb.spec.callback_id for cb in state.callbacks.due(25.0)] == ["c1"]
    assert [cb.spec.callback_id for cb in state.callbacks.due(25.0, include_in_flight=True)] == [
        "c2",
        "c1",
    ]
    assert [cb.spec.callback_id for cb in state.callbacks.in_flight()] == ["c2"]
    fail = CallbackAttemptFailed(
        callback_id="c2", attempt=1, status=None, error="refused", next_retry_at=40.0
    )
    fold([fail], state)
    c2 = state.callbacks.by_id["c2"]
    assert (c2.due_at, c2.attempts, c2.in_flight, c2.last_error) == (40.0, 1, False, "refused")
    assert [cb.spec.callback_id for cb in state.callbacks.due(35.0)] == ["c1", "c3"]
    fold(
        [
            CallbackAttemptStarted(callback_id="c1", attempt=1),
            CallbackAttemptSucceeded(callback_id="c1", attempt=1, status=204),
            CallbackGaveUp(callback_id="c3", reason="404"),
        ],
        state,
    )
    assert list(state.callbacks.pending) == ["c2"]
    assert state.callbacks.by_id["c1"].status == "delivered"
    assert state.callbacks.by_id["c3"].status == "gave_up"
    assert state.callbacks.due(1e12) == [c2]
    fold([created("j1"), JobDeleted(job_id="j1")], state)
    assert state.callbacks.by_id == {}
    assert state.callbacks.pending == {}
    assert MAX_CALLBACK_ATTEMPTS >= 3


def test_failed_attempt_without_retry_is_not_due() -> None:
    fail = CallbackAttemptFailed(
        callback_id="c1", attempt=1, status=410, error=None, next_retry_at=None
    )
    state = fold([_scheduled("c1", 1.0), CallbackAttemptStarted(callback_id="c1", attempt=1), fail])
    assert state.callbacks.due(1e12, include_in_flight=True) == []
    assert list(state.callbacks.pending) == ["c1"]


def test_cleanups_stay_pending_until_completed() -> None:
    state = fold(
        [
            CleanupMarked(path="ws/a", reason="done", job_id="a"),
            CleanupMarked(path="ws/b", reason="done", job_id=None),
            CleanupFailed(path="ws/a", error="EBUSY"),
        ]
    )
    pending = state.cleanup.pending_cleanups()
    assert [(c.spec.path, c.failures, c.last_error) for c in pending] == [
        ("ws/a", 1, "EBUSY"),
        ("ws/b", 0, None),
    ]
    fold([CleanupCompleted(path="ws/a"), CleanupCompleted(path="ws/zz")], state)
    assert [c.spec.path for c in state.cleanup.pending_cleanups()] == ["ws/b"]
    assert state.cleanup.completed == 1


def test_resources_and_staging_per_job() -> None:
    state = fold(
        [
            ContainerCreated(container_id="c1", name="cidx-a", job_id="a"),
            ContainerCreated(container_id="c2", name="cidx-b", job_id="b"),
            NetworkCreated(network_id="n1", name="net-a", job_id="a"),
            ContainerRemoved(container_id="c2"),
            StagingCreated(path="st/a", job_id="a"),
            StagingCreated(path="st/b", job_id="b"),
            StagingRemoved(path="st/b", reason="moved"),
        ]
    )
    assert state.resources.of_job("a") == (["c1"], ["n1"])
    assert state.resources.of_job("b") == ([], [])
    assert state.staging.of_job("a") == ["st/a"]
    assert state.staging.of_job("b") == []


def test_users_and_tokens() -> None:
    token = TokenIssued(token_hash="h1", user_id="u1", label="cli", expires_at=50.0)
    user = UserAdded(user_id="u1", name="U", role="admin")
    state = fold([user, token])
    assert state.users.authenticate("h1", now=10.0) == user
    assert state.users.authenticate("h1", now=50.0) is None
    assert state.users.authenticate("nope", now=10.0) is None
    fold([UserRemoved(user_id="u1")], state)
    assert state.users.authenticate("h1", now=10.0) is None
    fold([TokenRevoked(token_hash="h1")], state)
    assert state.users.tokens == {}


def test_repository_registration_clone_settings_and_degradation() -> None:
    registered = RepoRegistered(repo="api", git_url="g", branch="main", settings={"a": "1"})
    state = fold([registered, RepoCloneStarted(repo="api")])
    repo = state.repos.by_name["api"]
    assert (repo.clone, state.repos.usable("api")) == ("cloning", False)
    fold([RepoCloneFailed(repo="api", error="auth"), RepoCloneStarted(repo="api")], state)
    assert repo.clone_error is None
    fold([RepoCloneCompleted(repo="api", commit="abc")], state)
    assert (repo.clone, repo.commit, state.repos.usable("api")) == ("ready", "abc", True)
    fold([RepoSettingsChanged(repo="api", settings={"b": "2"})], state)
    assert repo.settings == {"b": "2"}
    fold([RepoDegraded(repo="api", reason="corrupt index")], state)
    assert state.repos.usable("api") is False
    fold([RepoUnregistered(repo="api")], state)
    assert state.repos.by_name == {}


def _run(state: State, job_id: str, agent: str, start: float, end: float) -> None:
    fold([created(job_id, agent=agent), env(_started(job_id), ts=start)], state)
    fold([env(JobCompleted(job_id=job_id, exit_code=0), ts=end)], state)


def test_p90_is_nearest_rank_over_completed_runs() -> None:
    state = State()
    for i in range(1, 11):
        _run(state, f"j{i}", "codex", 100.0, 100.0 + i)
    _run(state, "other", "aider", 0.0, 5.0)
    fold(
        [
            created("f"),
            env(_started("f"), ts=0.0),
            env(JobFailed(job_id="f", reason="x"), ts=999.0),
        ],
        state,
    )
    assert state.stats.p90("api", "codex") == 9.0
    assert state.stats.p90("api", "aider") == 5.0
    assert state.stats.p90("api", "gemini") is None
    assert state.stats.outcomes == {"completed": 11, "failed": 1}
    assert state.stats.keys == {}
    assert state.stats.started == {}


def test_stats_window_is_bounded() -> None:
    state = State()
    for i in range(WINDOW + 5):
        _run(state, f"j{i}", "codex", 0.0, float(i))
    window = state.stats.durations["api"]["codex"]
    assert len(window) == WINDOW
    assert window[0] == 5.0


def test_lifecycle_counts_crashes_and_keeps_recovery_metrics() -> None:
    metrics = RecoveryMetrics(
        events_replayed=10,
        snapshot_seq=None,
        bytes_cut=7,
        jobs_reattached=1,
        jobs_lost=0,
        locks_released=0,
        callbacks_resumed=0,
        cleanups_resumed=0,
        orphans_removed=0,
        duration_s=0.5,
    )
    state = fold(
        [
            ServerStarted(boot_id="b1", pid=1, version="0.1"),
            ServerStopping(),
            ServerStarted(boot_id="b2", pid=2, version="0.1"),
            ServerStarted(boot_id="b3", pid=3, version="0.1"),
            RecoveryCompleted(metrics=metrics),
        ]
    )
    life = state.lifecycle
    assert (life.boots, life.crashes, life.crash_seqs, life.up) == (3, 1, [4], True)
    assert life.boot is not None and life.boot.boot_id == "b3"
    assert life.last_recovery == metrics


def test_evolve_returns_the_same_state_and_tracks_last_seq() -> None:
    state = State()
    job: JobCreated = created("j1")
    assert evolve(state, 41, env(job)) is state
    assert state.last_seq == 41
