"""The checker must be able to fail: each rule is broken on purpose and must be reported."""

from __future__ import annotations

from projections import check
from projections.callbacks import MAX_CALLBACK_ATTEMPTS
from projections.events import (
    BatchFormed,
    CallbackAttemptStarted,
    CallbackScheduled,
    JobCompleted,
    JobDeleted,
    JobEnqueued,
    JobPreparing,
    JobProcessStarted,
    LockAcquired,
    LockReleased,
    TokenIssued,
    WaitStarted,
)
from projections.jobs import ProcessIdentity
from tests.projections.helpers import created, fold

STARTED = JobProcessStarted(
    job_id="a", pid=1, process_start_time=1.0, boot_id="b", output_path="o", heartbeat_path="h"
)


def _one(problems: list[str], fragment: str) -> None:
    assert any(fragment in p for p in problems), problems


def test_a_valid_history_has_no_violations() -> None:
    state = fold(
        [
            created("a"),
            JobEnqueued(job_id="a"),
            LockAcquired(repo="api", job_id="a", generation=1),
            JobPreparing(job_id="a"),
            LockReleased(repo="api", job_id="a", reason="prepared"),
            STARTED,
            JobCompleted(job_id="a", exit_code=0),
        ]
    )
    assert check(state) == []


def test_terminal_lock_holder() -> None:
    state = fold([created("a"), LockAcquired(repo="api", job_id="a", generation=1), STARTED])
    assert check(state) == []
    fold([JobCompleted(job_id="a", exit_code=0)], state)
    _one(check(state), "lock on 'api' is held by job 'a', which is completed")


def test_unknown_lock_holder_and_lock_conflicts() -> None:
    state = fold([LockAcquired(repo="api", job_id="ghost", generation=1)])
    _one(check(state), "held by unknown job 'ghost'")
    fold([created("b"), LockAcquired(repo="api", job_id="b", generation=2)], state)
    _one(check(state), "acquired by 'b' while held by 'ghost'")


def test_job_in_two_queues() -> None:
    state = fold([created("a"), JobEnqueued(job_id="a")])
    state.waits.queues["web"] = {"a": 5}
    _one(check(state), "job 'a' is in the run queue and in the wait queue of 'web'")


def test_job_waiting_on_two_repositories() -> None:
    state = fold(
        [created("a"), WaitStarted(repo="api", job_id="a"), WaitStarted(repo="web", job_id="a")]
    )
    _one(check(state), "job 'a' is in the wait queue of 'api' and in the wait queue of 'web'")


def test_queues_out_of_seq_order() -> None:
    state = fold([created("a"), created("b"), JobEnqueued(job_id="a"), JobEnqueued(job_id="b")])
    state.queue.entries = {"b": 4, "a": 3}
    _one(check(state), "the run queue is not ordered by seq")
    state.queue.entries = {}
    state.waits.queues["api"] = {"b": 9, "a": 9}
    state.waits.where.update(a="api", b="api")
    _one(check(state), "the wait queue of 'api' is not ordered by seq")


def test_running_and_queued() -> None:
    state = fold([created("a"), STARTED, JobEnqueued(job_id="a")])
    _one(check(state), "job 'a' is running and still in the run queue")


def test_running_without_process_identity() -> None:
    state = fold([created("a"), STARTED])
    state.jobs.by_id["a"].process = None
    _one(check(state), "job 'a' is running without a process identity")
    state.jobs.by_id["a"].process = ProcessIdentity(1, 1.0, "b", "o", "h")
    state.jobs.running.clear()
    _one(check(state), "missing from the running index")


def test_terminal_job_in_a_queue() -> None:
    state = fold([created("a"), JobCompleted(job_id="a", exit_code=0)])
    state.queue.entries["a"] = 3
    _one(check(state), "job 'a' is completed but still in the run queue")


def test_queue_holding_deleted_job() -> None:
    state = fold([JobEnqueued(job_id="gone")])
    _one(check(state), "the run queue holds unknown job 'gone'")


def test_callback_attempts_beyond_policy() -> None:
    scheduled = CallbackScheduled(
        callback_id="c", job_id="a", url="u", event="completed", due_at=1.0
    )
    state = fold(
        [scheduled, CallbackAttemptStarted(callback_id="c", attempt=MAX_CALLBACK_ATTEMPTS)]
    )
    assert check(state) == []
    fold([CallbackAttemptStarted(callback_id="c", attempt=MAX_CALLBACK_ATTEMPTS + 1)], state)
    _one(check(state), f"made {MAX_CALLBACK_ATTEMPTS + 1} attempts")


def test_batch_members_must_exist_and_share_the_repository() -> None:
    state = fold(
        [
            created("a"),
            created("w", repo="web"),
            BatchFormed(batch_id="B", repo="api", job_ids=["a", "w"]),
        ]
    )
    _one(check(state), "batch 'B' on 'api' has member 'w' of repository 'web'")
    fold([JobDeleted(job_id="a")], state)
    _one(check(state), "batch 'B' has unknown member 'a'")


def test_token_of_unknown_user() -> None:
    state = fold(
        [TokenIssued(token_hash="abcdef0123456789", user_id="nobody", label="x", expires_at=None)]
    )
    _one(check(state), "belongs to unknown user 'nobody'")
