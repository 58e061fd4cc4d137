"""``decide``: every command's legal outcomes and every refusal it can give.

Refusals are table-driven: ``REJECTIONS`` maps (command type, code) to a scenario that must be
refused with that code, and a test reads the decide sources to prove the table names every
code they can raise, with its kind. So a new refusal without a test fails here.

Every state in these tests is reached through ``decide`` and the real codec (``World``), and
``check(state)`` is asserted empty after every single event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec
import pytest
from typer.testing import CliRunner

from projections import Event, check, decide, encode, encode_state, make
from projections import commands as c
from projections.decide import DECIDERS
from projections.events import (
    AgentSpec,
    BatchEnded,
    BatchFailed,
    BatchFormed,
    BatchPrepared,
    CallbackAttemptFailed,
    CallbackAttemptStarted,
    CallbackAttemptSucceeded,
    CallbackDue,
    CallbackGaveUp,
    CallbackRetryRequested,
    CleanupArchived,
    CleanupCompleted,
    CleanupFailed,
    CleanupMarked,
    ContainerCreated,
    ContainerRemoved,
    Idempotency,
    JobCancelled,
    JobCancelRequested,
    JobCompleted,
    JobCreated,
    JobDeleted,
    JobDeleteRequested,
    JobEnqueued,
    JobFailed,
    JobFileStaged,
    JobLaunching,
    JobLost,
    JobProcessStarted,
    JobPurged,
    JobReattached,
    JobTimedOut,
    JobWaiting,
    JobWorkspaceCreated,
    LockReleased,
    NetworkCreated,
    NetworkRemoved,
    OrphanRemoved,
    RecoveryCompleted,
    RepoCloneCompleted,
    RepoCloneFailed,
    RepoCloneStarted,
    RepoDegraded,
    RepoRegistered,
    RepoRestored,
    RepoSettings,
    RepoSettingsChanged,
    RepoUnregistered,
    ResourceRemovalFailed,
    ServerConfigured,
    ServerInitialized,
    ServerSettings,
    ServerStarted,
    ServerStopping,
    Sidecar,
    SnapshotTaken,
    StagingCreated,
    StagingRemoved,
    TokenIssued,
    TokenRevoked,
    UserAdded,
    UserRemoved,
)
from projections.jobs import EarlierCreate
from tests.projections.world import SETTINGS, World, raised_codes, report, types
from tests.service.helpers import make_data_dir
from tools.cli import app

Scenario = Callable[[], tuple[World, c.Command]]
REJECTIONS: dict[tuple[type[c.Command], str], Scenario] = {}
"""(command type, code) -> a scenario whose command ``decide`` must refuse with that code."""


def rejects(command: type[c.Command], code: str) -> Callable[[Scenario], Scenario]:
    def register(scenario: Scenario) -> Scenario:
        assert (command, code) not in REJECTIONS, (command, code)
        REJECTIONS[(command, code)] = scenario
        return scenario

    return register


def booted() -> World:
    return World().boot()


def callback_job(job_id: str = "j1") -> World:
    """A completed job whose one webhook is due."""
    w = booted()
    w.complete(job_id, callbacks=[c.CallbackRequest(url="https://hooks.example/done")])
    return w


def gave_up(job_id: str = "j1") -> World:
    w = callback_job(job_id)
    cid = f"{job_id}-cb0"
    w.do(c.StartAttempt(callback_id=cid))
    w.do(c.RecordAttempt(callback_id=cid, attempt=1, outcome="give_up", status=400))
    return w


def recovering(w: World) -> bool:
    return w.state.server.recovering


def usable(w: World, repo: str) -> bool:
    return w.state.repos.by_name[repo].usable


def deleted(w: World, job_id: str) -> bool:
    return w.state.jobs.by_id[job_id].deleted


def delivery_status(w: World, callback_id: str) -> str:
    return w.state.callbacks.by_id[callback_id].status


def deleted_job(job_id: str = "j1", **options: Any) -> World:
    w = booted()
    w.complete(job_id, **options)
    w.do(c.DeleteJob(job_id=job_id))
    return w


# -- the refusals, one scenario per (command, code) ----------------------------------------


@rejects(c.InitializeServer, "already_initialized")
def _() -> tuple[World, c.Command]:
    return booted(), c.InitializeServer(server_id="another")


@rejects(c.Configure, "invalid_setting")
def _() -> tuple[World, c.Command]:
    return booted(), c.Configure(settings=ServerSettings(max_concurrent=0))


@rejects(c.StopServer, "not_running")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.do(c.StopServer())
    return w, c.StopServer()


@rejects(c.CompleteRecovery, "not_recovering")
def _() -> tuple[World, c.Command]:
    return booted(), c.CompleteRecovery(report=report())


@rejects(c.AddUser, "invalid_username")
def _() -> tuple[World, c.Command]:
    return booted(), c.AddUser(user_id="u", username="Not Valid", role="user", password_hash=None)


@rejects(c.AddUser, "user_exists")
def _() -> tuple[World, c.Command]:
    return booted(), c.AddUser(user_id="bob", username="bobby", role="user", password_hash=None)


@rejects(c.AddUser, "username_taken")
def _() -> tuple[World, c.Command]:
    return booted(), c.AddUser(user_id="u9", username="bob", role="user", password_hash=None)


@rejects(c.RemoveUser, "user_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.RemoveUser(user_id="nobody")


@rejects(c.RemoveUser, "last_admin")
def _() -> tuple[World, c.Command]:
    return booted(), c.RemoveUser(user_id="alice")


@rejects(c.RemoveUser, "user_has_jobs")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.queue("j1")
    return w, c.RemoveUser(user_id="bob")


@rejects(c.IssueToken, "user_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.IssueToken(
        token_hash="t" * 64, user_id="nobody", label="x", ttl_seconds=None
    )


@rejects(c.IssueToken, "token_exists")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.do(c.IssueToken(token_hash="t" * 64, user_id="bob", label="cli", ttl_seconds=None))
    return w, c.IssueToken(token_hash="t" * 64, user_id="alice", label="x", ttl_seconds=None)


@rejects(c.IssueToken, "invalid_ttl")
def _() -> tuple[World, c.Command]:
    return booted(), c.IssueToken(token_hash="t" * 64, user_id="bob", label="x", ttl_seconds=0.0)


@rejects(c.RevokeToken, "token_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.RevokeToken(token_hash="f" * 64)


@rejects(c.RegisterRepo, "invalid_repo_name")
def _() -> tuple[World, c.Command]:
    return booted(), c.RegisterRepo(repo="-rm", git_url="https://g/x.git", branch="main")


@rejects(c.RegisterRepo, "repo_exists")
def _() -> tuple[World, c.Command]:
    return booted(), c.RegisterRepo(repo="api", git_url="https://g/x.git", branch="main")


@rejects(c.RegisterRepo, "invalid_git_url")
def _() -> tuple[World, c.Command]:
    return booted(), c.RegisterRepo(repo="new", git_url="  ", branch="main")


@rejects(c.RegisterRepo, "invalid_branch")
def _() -> tuple[World, c.Command]:
    return booted(), c.RegisterRepo(repo="new", git_url="https://g/x.git", branch="--force")


@rejects(c.ChangeRepoSettings, "repo_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.ChangeRepoSettings(repo="nope", settings=RepoSettings())


@rejects(c.FinishClone, "repo_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.FinishClone(repo="nope", commit="c")


@rejects(c.FinishClone, "not_cloning")
def _() -> tuple[World, c.Command]:
    return booted(), c.FinishClone(repo="api", commit="c")


@rejects(c.FinishClone, "invalid_outcome")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.do(c.RegisterRepo(repo="new", git_url="https://g/new.git", branch="main"))
    return w, c.FinishClone(repo="new", commit="c", error="and yet it failed")


@rejects(c.RetryClone, "repo_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.RetryClone(repo="nope")


@rejects(c.RetryClone, "not_failed")
def _() -> tuple[World, c.Command]:
    return booted(), c.RetryClone(repo="api")


@rejects(c.DegradeRepo, "repo_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.DegradeRepo(repo="nope", reason="gone")


@rejects(c.RestoreRepo, "repo_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.RestoreRepo(repo="nope")


@rejects(c.RestoreRepo, "not_degraded")
def _() -> tuple[World, c.Command]:
    return booted(), c.RestoreRepo(repo="api")


@rejects(c.UnregisterRepo, "repo_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.UnregisterRepo(repo="nope")


@rejects(c.UnregisterRepo, "repo_in_use")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.create("j1", "api")
    return w, c.UnregisterRepo(repo="api")


@rejects(c.UnregisterRepo, "repo_busy")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.do(c.RegisterRepo(repo="new", git_url="https://g/new.git", branch="main"))
    return w, c.UnregisterRepo(repo="new")


def _create(**fields: object) -> c.CreateJob:
    fields = {"job_id": "j1", "owner": "bob", "prompt": "fix it", "repo": "api", **fields}
    return c.CreateJob(**fields)  # type: ignore[arg-type]


@rejects(c.CreateJob, "idempotency_conflict")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.create("j1", idempotency=Idempotency(key_hash="k1", body_hash="b1"))
    return w, _create(job_id="j2", idempotency=Idempotency(key_hash="k1", body_hash="b2"))


@rejects(c.CreateJob, "job_exists")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.create("j1")
    return w, _create()


@rejects(c.CreateJob, "user_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), _create(owner="nobody")


@rejects(c.CreateJob, "repo_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), _create(repo="nope")


@rejects(c.CreateJob, "empty_prompt")
def _() -> tuple[World, c.Command]:
    return booted(), _create(prompt=" \n\t")


@rejects(c.CreateJob, "prompt_too_long")
def _() -> tuple[World, c.Command]:
    return booted(), _create(prompt="x" * 1_000_001)


@rejects(c.CreateJob, "unknown_agent")
def _() -> tuple[World, c.Command]:
    return booted(), _create(agent="gpt-cli")


@rejects(c.CreateJob, "invalid_timeout")
def _() -> tuple[World, c.Command]:
    return booted(), _create(timeout_seconds=SETTINGS.max_timeout_seconds + 1)


@rejects(c.CreateJob, "invalid_env")
def _() -> tuple[World, c.Command]:
    return booted(), _create(env={"9LIVES": "x"})


@rejects(c.CreateJob, "env_denied")
def _() -> tuple[World, c.Command]:
    return booted(), _create(env={"LD_PRELOAD": "/tmp/evil.so"})


@rejects(c.CreateJob, "env_not_allowed")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.do(c.Configure(settings=msgspec.structs.replace(SETTINGS, job_env_allow=["APP_*"])))
    return w, _create(env={"DEBUG": "1"})


@rejects(c.CreateJob, "sandbox_required")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.do(c.Configure(settings=msgspec.structs.replace(SETTINGS, sandbox="none")))
    return w, _create(owner="bob")


@rejects(c.CreateJob, "invalid_sidecar")
def _() -> tuple[World, c.Command]:
    twice = [Sidecar(name="db", image="postgres"), Sidecar(name="db", image="redis")]
    return booted(), _create(sidecars=twice)


@rejects(c.CreateJob, "too_many_callbacks")
def _() -> tuple[World, c.Command]:
    hooks = [c.CallbackRequest(url=f"https://h/{n}") for n in range(11)]
    return booted(), _create(callbacks=hooks)


@rejects(c.CreateJob, "invalid_callback_url")
def _() -> tuple[World, c.Command]:
    return booted(), _create(callbacks=[c.CallbackRequest(url="file:///etc/passwd")])


@rejects(c.StartStaging, "job_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.StartStaging(job_id="nope")


@rejects(c.StartStaging, "job_started")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.queue("j1")
    return w, c.StartStaging(job_id="j1")


@rejects(c.StageFile, "job_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.StageFile(job_id="nope", name="a", size=1, sha256="0" * 64)


@rejects(c.StageFile, "job_started")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.create("j1")
    w.do(c.StartStaging(job_id="j1"))
    w.do(c.StartJob(job_id="j1"))
    return w, c.StageFile(job_id="j1", name="a", size=1, sha256="0" * 64)


@rejects(c.StageFile, "no_staging")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.create("j1")
    return w, c.StageFile(job_id="j1", name="a", size=1, sha256="0" * 64)


@rejects(c.StartJob, "job_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.StartJob(job_id="nope")


@rejects(c.StartJob, "job_not_startable")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.complete("j1")
    return w, c.StartJob(job_id="j1")


@rejects(c.CancelJob, "job_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.CancelJob(job_id="nope")


@rejects(c.CancelJob, "job_finished")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.complete("j1")
    return w, c.CancelJob(job_id="j1")


@rejects(c.DeleteJob, "job_not_found")
def _() -> tuple[World, c.Command]:
    return deleted_job(), c.DeleteJob(job_id="j1")


@rejects(c.PurgeJob, "job_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.PurgeJob(job_id="nope")


@rejects(c.PurgeJob, "job_not_deleted")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.complete("j1")
    w.now += SETTINGS.retention_seconds * 2
    return w, c.PurgeJob(job_id="j1")


@rejects(c.PurgeJob, "retained")
def _() -> tuple[World, c.Command]:
    return deleted_job(), c.PurgeJob(job_id="j1")


@rejects(c.PurgeJob, "job_busy")
def _() -> tuple[World, c.Command]:
    w = deleted_job()  # its workspace cleanup is still pending
    w.now += SETTINGS.retention_seconds * 2
    return w, c.PurgeJob(job_id="j1")


@rejects(c.FinishPreparation, "batch_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.FinishPreparation(batch_id="batch-9", generation=1, commit="c")


@rejects(c.FinishPreparation, "stale_preparation")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.run_to_preparing("j1")
    batch = w.state.batches.active[w.batch_of("j1")]
    return w, c.FinishPreparation(
        batch_id=batch.batch_id, generation=batch.generation - 1, commit="c"
    )


@rejects(c.ReleaseStaleLock, "lock_not_held")
def _() -> tuple[World, c.Command]:
    return booted(), c.ReleaseStaleLock(repo="api")


@rejects(c.ReleaseStaleLock, "lock_in_use")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.run_to_preparing("j1")
    return w, c.ReleaseStaleLock(repo="api")


@rejects(c.FinishPreparation, "invalid_outcome")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.run_to_preparing("j1")
    batch = w.state.batches.active[w.batch_of("j1")]
    return w, c.FinishPreparation(batch_id=batch.batch_id, generation=batch.generation)


@rejects(c.RecordWorkspace, "job_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.RecordWorkspace(job_id="nope")


@rejects(c.RecordWorkspace, "not_preparing")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.queue("j1")
    return w, c.RecordWorkspace(job_id="j1")


@rejects(c.RecordWorkspace, "not_prepared")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.run_to_preparing("j1")
    return w, c.RecordWorkspace(job_id="j1")


@rejects(c.BeginLaunch, "job_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.BeginLaunch(job_id="nope")


@rejects(c.BeginLaunch, "not_launchable")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.run_to_preparing("j1")
    w.prepare("j1")
    return w, c.BeginLaunch(job_id="j1")  # no workspace yet


def _started(job_id: str = "j1") -> c.RecordProcessStarted:
    return c.RecordProcessStarted(job_id=job_id, pid=7, process_start_time=1.0, boot_id="b")


@rejects(c.RecordProcessStarted, "job_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), _started("nope")


@rejects(c.RecordProcessStarted, "not_launching")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.run_to_running("j1")
    return w, _started()  # a second process for one launch


@rejects(c.RecordExit, "job_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.RecordExit(job_id="nope", code=0)


@rejects(c.RecordExit, "not_running")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.complete("j1")
    return w, c.RecordExit(job_id="j1", code=1)


@rejects(c.FailJob, "job_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.FailJob(job_id="nope", reason="x")


@rejects(c.FailJob, "has_process")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.run_to_running("j1")
    return w, c.FailJob(job_id="j1", reason="x")


@rejects(c.FailJob, "job_finished")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.complete("j1")
    return w, c.FailJob(job_id="j1", reason="x")


@rejects(c.RecordStaleHeartbeat, "job_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.RecordStaleHeartbeat(job_id="nope", heartbeat_age=None)


@rejects(c.RecordStaleHeartbeat, "not_running")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.queue("j1")
    return w, c.RecordStaleHeartbeat(job_id="j1", heartbeat_age=None)


@rejects(c.RecordStaleHeartbeat, "not_launched")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.run_to_preparing("j1")
    return w, c.RecordStaleHeartbeat(job_id="j1", heartbeat_age=None)


@rejects(c.RecordStaleHeartbeat, "heartbeat_fresh")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.run_to_running("j1")
    age = SETTINGS.heartbeat_stale_seconds
    return w, c.RecordStaleHeartbeat(job_id="j1", heartbeat_age=age)  # not older than that


@rejects(c.RecordDamagedRunDir, "job_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.RecordDamagedRunDir(job_id="nope", error="x")


@rejects(c.RecordDamagedRunDir, "not_running")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.complete("j1")
    return w, c.RecordDamagedRunDir(job_id="j1", error="x")


@rejects(c.RecordDamagedRunDir, "not_launched")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.run_to_preparing("j1")
    return w, c.RecordDamagedRunDir(job_id="j1", error="x")


@rejects(c.Reattach, "job_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.Reattach(job_id="nope", boot_id="b")


@rejects(c.Reattach, "not_running")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.complete("j1")
    return w, c.Reattach(job_id="j1", boot_id="b")


@rejects(c.StartAttempt, "callback_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.StartAttempt(callback_id="nope")


@rejects(c.StartAttempt, "callback_not_pending")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.run_to_running("j1", callbacks=[c.CallbackRequest(url="https://h/x")])
    return w, c.StartAttempt(callback_id="j1-cb0")  # the job has not finished


@rejects(c.StartAttempt, "callback_not_due")
def _() -> tuple[World, c.Command]:
    w = callback_job()
    w.do(c.StartAttempt(callback_id="j1-cb0"))
    w.do(c.RecordAttempt(callback_id="j1-cb0", attempt=1, outcome="retry", status=503))
    return w, c.StartAttempt(callback_id="j1-cb0")  # the retry is 5 s away


@rejects(c.RecordAttempt, "callback_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.RecordAttempt(callback_id="nope", attempt=1, outcome="delivered")


@rejects(c.RecordAttempt, "attempt_not_in_flight")
def _() -> tuple[World, c.Command]:
    return callback_job(), c.RecordAttempt(callback_id="j1-cb0", attempt=1, outcome="delivered")


@rejects(c.RetryCallback, "job_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.RetryCallback(job_id="nope", index=0)


@rejects(c.RetryCallback, "callback_not_found")
def _() -> tuple[World, c.Command]:
    return gave_up(), c.RetryCallback(job_id="j1", index=1)


@rejects(c.RetryCallback, "callback_not_failed")
def _() -> tuple[World, c.Command]:
    return callback_job(), c.RetryCallback(job_id="j1", index=0)


@rejects(c.RecordArchived, "cleanup_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.RecordArchived(path="workspaces/nope", archive="a")


@rejects(c.FinishCleanup, "cleanup_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.FinishCleanup(path="workspaces/nope")


@rejects(c.RecordContainer, "job_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.RecordContainer(job_id="nope", container_id="ct", sidecar="db")


@rejects(c.RecordContainer, "sidecar_not_found")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.create("j1", sidecars=[Sidecar(name="db", image="postgres:16")])
    return w, c.RecordContainer(job_id="j1", container_id="ct", sidecar="cache")


@rejects(c.RecordNetwork, "job_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.RecordNetwork(job_id="nope", network_id="nt")


@rejects(c.RecordRemoval, "invalid_kind")
def _() -> tuple[World, c.Command]:
    return booted(), c.RecordRemoval(kind="workspace", resource_id="x")


@rejects(c.RecordRemoval, "resource_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.RecordRemoval(kind="container", resource_id="ct-nope")


@rejects(c.RecordOrphan, "not_orphan")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.create("j1", sidecars=[Sidecar(name="db", image="postgres:16")])
    w.do(c.RecordContainer(job_id="j1", container_id="ct1", sidecar="db"))
    return w, c.RecordOrphan(kind="container", resource_id="ct1", job_id="j1")


@rejects(c.RemoveStaging, "staging_not_found")
def _() -> tuple[World, c.Command]:
    return booted(), c.RemoveStaging(path="staging/nope", reason="orphan")


@rejects(c.RemoveStaging, "staging_in_use")
def _() -> tuple[World, c.Command]:
    w = booted()
    w.create("j1")
    w.do(c.StartStaging(job_id="j1"))
    return w, c.RemoveStaging(path="staging/j1", reason="stale")  # not 50 s old yet


RAISED: Final = raised_codes()


def test_the_table_names_every_code_decide_can_raise() -> None:
    assert len(RAISED) > 40, "the source scan found too few codes: is it still reading them?"
    assert {code for _, code in REJECTIONS} == set(RAISED)


def test_every_refusal_is_of_a_known_command() -> None:
    assert {command for command, _ in REJECTIONS} <= set(DECIDERS)


@pytest.mark.parametrize(
    ("command_type", "code"), list(REJECTIONS), ids=[f"{t.__name__}-{k}" for t, k in REJECTIONS]
)
def test_refusal(command_type: type[c.Command], code: str) -> None:
    """Refused with its stable code and kind; nothing emitted, the state unchanged."""
    world, command = REJECTIONS[(command_type, code)]()
    assert type(command) is command_type
    world.refuse(command, RAISED[code], code)


# -- legal outcomes: server and users --------------------------------------------------------


def test_server_lifecycle_events() -> None:
    w = World()
    assert types(w.do(c.InitializeServer(server_id="s1"))) == [ServerInitialized]
    assert types(w.do(c.Configure(settings=SETTINGS))) == [ServerConfigured]
    assert w.do(c.Configure(settings=SETTINGS)) == [], "the same settings change nothing"
    assert w.state.server.settings == SETTINGS
    [started] = w.do(c.StartServer(boot_id="b1", pid=1, version="v"))
    assert isinstance(started, ServerStarted) and started.at == w.now
    assert recovering(w)
    assert types(w.do(c.CompleteRecovery(report=report()))) == [RecoveryCompleted]
    assert not recovering(w)
    assert types(w.do(c.RecordSnapshot(seq=5, file="5.snap"))) == [SnapshotTaken]
    assert types(w.do(c.StopServer())) == [ServerStopping]
    assert not w.state.server.up and w.state.server.crash_seqs == []


def test_a_start_without_a_stop_is_recorded_as_a_crash() -> None:
    w = booted()
    seq = w.state.last_seq + 1
    w.do(c.StartServer(boot_id="boot-2", pid=200, version="test"))
    assert w.state.server.crash_seqs == [seq]
    assert w.state.server.boots == 2 and w.state.server.recovering


@pytest.mark.parametrize(
    "settings",
    [
        ServerSettings(max_concurrent=0),
        ServerSettings(default_timeout_seconds=0.0),
        ServerSettings(default_timeout_seconds=100.0, max_timeout_seconds=50.0),
        ServerSettings(callback_schedule=[5.0, -1.0]),
        ServerSettings(agents={"broken": AgentSpec(command=[])}),
        ServerSettings(job_env_allow=["APP_*", " "]),
    ],
)
def test_configure_refuses_each_bad_setting(settings: ServerSettings) -> None:
    booted().refuse(c.Configure(settings=settings), "invalid", "invalid_setting")


def test_users_and_tokens() -> None:
    w = booted()
    [added] = w.do(c.AddUser(user_id="u1", username="carol", role="user", password_hash="$s$x"))
    assert isinstance(added, UserAdded)
    assert w.state.users.named("carol") is w.state.users.by_id["u1"]
    [issued] = w.do(c.IssueToken(token_hash="a" * 64, user_id="u1", label="ci", ttl_seconds=60))
    assert isinstance(issued, TokenIssued) and issued.expires_at == w.now + 60
    assert w.state.users.authenticate("a" * 64, w.now) is w.state.users.by_id["u1"]
    assert w.state.users.authenticate("a" * 64, w.now + 60) is None, "expired"
    w.do(c.IssueToken(token_hash="b" * 64, user_id="u1", label="cli", ttl_seconds=None))
    assert types(w.do(c.RevokeToken(token_hash="b" * 64))) == [TokenRevoked]
    w.do(c.IssueToken(token_hash="c" * 64, user_id="u1", label="cli", ttl_seconds=None))
    removal = w.do(c.RemoveUser(user_id="u1"))
    assert types(removal) == [TokenRevoked, TokenRevoked, UserRemoved], "tokens go first"
    assert w.state.users.tokens_of("u1") == [] and w.state.users.named("carol") is None


def test_an_admin_can_be_removed_while_another_remains() -> None:
    w = booted()
    w.do(c.AddUser(user_id="root2", username="root2", role="admin", password_hash=None))
    assert types(w.do(c.RemoveUser(user_id="alice"))) == [UserRemoved]


def test_a_user_whose_jobs_all_ended_can_be_removed() -> None:
    w = booted()
    w.complete("j1")
    assert types(w.do(c.RemoveUser(user_id="bob"))) == [UserRemoved]


# -- legal outcomes: repositories ------------------------------------------------------------


def test_registration_takes_the_clone_lock_and_its_end_gives_it_back() -> None:
    w = booted()
    settings = RepoSettings(index_command=["cidx", "index"], default_agent="codex")
    events = w.do(
        c.RegisterRepo(
            repo="new", git_url="https://g/n.git", branch="dev", description="d", settings=settings
        )
    )
    assert types(events) == [RepoRegistered, RepoCloneStarted]
    lock = w.state.locks.holder("new")
    assert lock is not None and (lock.kind, lock.holder, lock.generation) == ("clone", "new", 1)
    assert w.state.repos.by_name["new"].clone == "cloning"
    assert types(w.do(c.FinishClone(repo="new", commit="abc"))) == [
        RepoCloneCompleted,
        LockReleased,
    ]
    repo = w.state.repos.by_name["new"]
    assert repo.usable and repo.commit == "abc" and w.state.locks.holder("new") is None


def test_a_failed_clone_fails_its_waiters_and_can_be_retried() -> None:
    w = booted()
    w.do(c.RegisterRepo(repo="new", git_url="https://g/n.git", branch="main"))
    w.queue("j1", "new")
    w.do(c.Dispatch())
    assert w.status("j1") == "waiting", "the clone holds the lock"
    events = w.do(c.FinishClone(repo="new", error="auth failed"))
    assert types(events) == [RepoCloneFailed, LockReleased, JobFailed]
    assert w.status("j1") == "failed" and "auth failed" in (w.state.jobs.by_id["j1"].reason or "")
    retry = w.do(c.RetryClone(repo="new"))
    assert types(retry) == [RepoCloneStarted]
    assert isinstance(retry[0], RepoCloneStarted) and retry[0].generation == 2


def test_a_clone_handing_its_lock_to_waiters_forms_their_batch() -> None:
    w = booted()
    w.do(c.RegisterRepo(repo="new", git_url="https://g/n.git", branch="main"))
    w.queue("j1", "new")
    w.queue("j2", "new")
    w.do(c.Dispatch())
    events = w.do(c.FinishClone(repo="new", commit="abc"))
    assert types(events) == [RepoCloneCompleted, LockReleased, BatchFormed]
    formed = events[2]
    assert isinstance(formed, BatchFormed) and formed.job_ids == ["j1", "j2"]
    assert formed.generation == 2


def test_settings_degrade_restore_unregister() -> None:
    w = booted()
    settings = RepoSettings(index_command=["make", "index"])
    assert types(w.do(c.ChangeRepoSettings(repo="web", settings=settings))) == [RepoSettingsChanged]
    assert w.do(c.ChangeRepoSettings(repo="web", settings=settings)) == []
    assert w.state.repos.by_name["web"].settings == settings
    assert types(w.do(c.DegradeRepo(repo="web", reason="HEAD missing"))) == [RepoDegraded]
    assert w.do(c.DegradeRepo(repo="web", reason="HEAD missing")) == []
    assert not usable(w, "web")
    assert types(w.do(c.RestoreRepo(repo="web"))) == [RepoRestored]
    assert usable(w, "web")
    events = w.do(c.UnregisterRepo(repo="web"))
    assert types(events) == [RepoUnregistered, CleanupMarked]
    assert isinstance(events[1], CleanupMarked) and events[1].path == "repos/web"
    assert "web" not in w.state.repos.by_name


def test_degrading_fails_the_waiters_and_dispatch_fails_queued_jobs_of_it() -> None:
    w = booted()
    w.run_to_preparing("j1")
    w.queue("j2")
    w.queue("j3")
    w.do(c.Dispatch())
    assert w.status("j2") == w.status("j3") == "waiting"
    events = w.do(c.DegradeRepo(repo="api", reason="disk error"))
    assert types(events) == [RepoDegraded, JobFailed, JobFailed]
    assert w.status("j2") == w.status("j3") == "failed"
    w.queue("j4")
    assert types(w.do(c.Dispatch())) == [JobFailed]
    assert "degraded" in (w.state.jobs.by_id["j4"].reason or "")


def test_a_repository_is_in_use_until_its_jobs_end() -> None:
    w = booted()
    w.complete("j1", "web")
    assert types(w.do(c.UnregisterRepo(repo="web"))) == [RepoUnregistered, CleanupMarked]


# -- legal outcomes: creating, staging, starting ----------------------------------------------


def test_create_resolves_defaults_and_derives_callback_ids() -> None:
    w = booted()
    [created] = w.create(
        "j1",
        callbacks=[c.CallbackRequest(url="https://a"), c.CallbackRequest(url="http://b")],
        env={"TOKEN_1": "x"},
        sidecars=[Sidecar(name="idx-1", image="cidx:1")],
    )
    assert isinstance(created, JobCreated) and created.at == w.now
    assert created.agent == "claude-code"
    assert created.options.timeout_seconds == SETTINGS.default_timeout_seconds
    assert [cb.callback_id for cb in created.callbacks] == ["j1-cb0", "j1-cb1"]
    assert all(cb.schedule == SETTINGS.callback_schedule for cb in created.callbacks)
    job = w.state.jobs.by_id["j1"]
    assert job.status == "created" and job.seqs == [w.state.last_seq]
    assert [d.status for d in w.state.callbacks.of_job("j1")] == ["scheduled", "scheduled"]


def test_the_repository_default_agent_applies() -> None:
    w = booted()
    settings = RepoSettings(default_agent="codex")
    w.do(c.ChangeRepoSettings(repo="web", settings=settings))
    [created] = w.create("j1", "web")
    assert isinstance(created, JobCreated) and created.agent == "codex"


def test_a_zero_timeout_is_refused_not_replaced_by_the_default() -> None:
    booted().refuse(
        _create(timeout_seconds=0.0), "invalid", "invalid_timeout"
    )  # 0 is a value the client sent, not an absent one


def test_idempotent_create_same_body_no_events_other_body_conflict() -> None:
    w = booted()
    key = Idempotency(key_hash="k", body_hash="body-1")
    assert types(w.create("j1", idempotency=key)) == [JobCreated]
    before = w.state.last_seq
    assert w.create("j1", idempotency=key) == [], "a replayed request changes nothing"
    assert w.create("j2", idempotency=key) == [], "whatever id the retry generated"
    assert w.state.last_seq == before and "j2" not in w.state.jobs.by_id
    other = Idempotency(key_hash="k", body_hash="body-2")
    error = w.refuse(_create(job_id="j3", idempotency=other), "invalid", "idempotency_conflict")
    assert "j1" in error.message
    assert w.state.jobs.idempotency == {"k": ("j1", "body-1")}


def test_a_key_is_looked_up_once_for_decide_and_the_api() -> None:
    """``Jobs.created_with``: the API answers a repeat with its job, decide refuses a conflict."""
    w = booted()
    key = Idempotency(key_hash="k", body_hash="body-1")
    assert w.state.jobs.created_with(key) is None
    w.create("j1", idempotency=key)
    assert w.state.jobs.created_with(key) == EarlierCreate("j1", same_body=True)
    other_body = Idempotency(key_hash="k", body_hash="body-2")
    assert w.state.jobs.created_with(other_body) == EarlierCreate("j1", same_body=False)
    assert w.state.jobs.created_with(Idempotency(key_hash="k2", body_hash="body-1")) is None


def test_a_purged_job_frees_its_key_but_never_its_id() -> None:
    w = booted()
    key = Idempotency(key_hash="k", body_hash="body-1")
    w.complete("j1", idempotency=key)
    w.do(c.DeleteJob(job_id="j1"))
    w.do(c.FinishCleanup(path="workspaces/j1"))
    w.do(c.FinishCleanup(path="runs/j1"))
    w.do(c.PurgeJob(job_id="j1"), advance=SETTINGS.retention_seconds)
    assert "j1" not in w.state.jobs.by_id and "k" not in w.state.jobs.idempotency
    w.refuse(_create(idempotency=key), "conflict", "job_exists")
    assert types(w.create("j2", idempotency=key)) == [JobCreated]


def test_staging_then_start() -> None:
    w = booted()
    w.create("j1")
    assert types(w.do(c.StartStaging(job_id="j1"))) == [StagingCreated]
    assert w.do(c.StartStaging(job_id="j1")) == [], "already recorded"
    staged = w.do(c.StageFile(job_id="j1", name="spec.md", size=10, sha256="ab" * 32))
    assert types(staged) == [JobFileStaged] and list(w.state.jobs.by_id["j1"].files) == ["spec.md"]
    [enqueued] = w.do(c.StartJob(job_id="j1"))
    assert isinstance(enqueued, JobEnqueued) and enqueued.at == w.now
    assert w.status("j1") == "queued" and list(w.state.jobs.queue) == ["j1"]
    assert w.do(c.StartJob(job_id="j1")) == [], "starting a queued job is already done"
    assert list(w.state.jobs.queue) == ["j1"], "and never moves it to the back"


# -- legal outcomes: dispatch and preparation -----------------------------------------------


def test_dispatch_is_fifo_and_bounded_by_max_concurrent() -> None:
    w = booted()
    for n, repo in enumerate(["api", "web", "api", "web", "api"], start=1):
        w.queue(f"j{n}", repo)
    events = w.do(c.Dispatch())
    assert types(events) == [BatchFormed, BatchFormed, JobWaiting]
    assert [getattr(e, "job_ids", [getattr(e, "job_id", None)]) for e in events] == [
        ["j1"],
        ["j2"],
        ["j3"],
    ]
    assert len(w.state.jobs.active) == SETTINGS.max_concurrent
    assert list(w.state.jobs.queue) == ["j4", "j5"]
    assert w.do(c.Dispatch()) == [], "no free slot"


def test_empty_queue_dispatches_nothing() -> None:
    assert booted().do(c.Dispatch()) == []


def test_dispatch_takes_the_lock_and_moves_members_to_preparing_in_one_fact() -> None:
    w = booted()
    w.queue("j1")
    [formed] = w.do(c.Dispatch())
    assert isinstance(formed, BatchFormed) and formed.job_ids == ["j1"]
    assert formed.lease_expires_at == w.now + SETTINGS.prepare_timeout_seconds
    lock = w.state.locks.holder("api")
    assert lock is not None and (lock.holder, lock.kind) == (formed.batch_id, "prepare")
    assert lock.generation == w.state.locks.generations["api"]
    assert w.status("j1") == "preparing"


def test_a_successful_preparation_hands_the_lock_to_all_waiters_fifo() -> None:
    w = booted()
    w.run_to_preparing("j1")
    w.queue("j2")
    w.queue("j3")
    w.do(c.Dispatch())
    assert w.state.jobs.waiters("api") == ["j2", "j3"]
    events = w.prepare("j1")
    assert types(events) == [BatchPrepared, LockReleased, BatchFormed]
    formed = events[2]
    assert isinstance(formed, BatchFormed) and formed.job_ids == ["j2", "j3"]
    assert w.status("j2") == w.status("j3") == "preparing"
    assert w.state.locks.holder("api") is not None
    assert w.state.repos.by_name["api"].commit == "c1"


def test_a_failed_preparation_fails_its_members_and_the_lock_moves_on() -> None:
    w = booted()
    w.queue("j1", callbacks=[c.CallbackRequest(url="https://h")], auto_cleanup=True)
    w.queue("j2")
    w.do(c.Dispatch())
    batch = w.state.batches.active[w.batch_of("j1")]
    events = w.do(
        c.FinishPreparation(batch_id=batch.batch_id, generation=batch.generation, error="fetch")
    )
    assert types(events) == [
        BatchFailed,
        CallbackDue,
        CleanupMarked,
        LockReleased,
        BatchFormed,
        BatchEnded,
    ]
    assert w.status("j1") == "failed" and w.state.jobs.by_id["j1"].reason == (
        "preparation failed: fetch"
    )
    assert w.state.repos.by_name["api"].prepare_error == "fetch"
    assert batch.batch_id not in w.state.batches.active
    assert w.status("j2") == "preparing"


def test_a_batch_ends_with_its_last_member() -> None:
    w = booted()
    w.run_to_preparing("j1")
    w.queue("j2")
    w.do(c.Dispatch())
    w.prepare("j1")
    w.prepare("j2")
    w.do(c.RecordWorkspace(job_id="j2"))
    w.do(c.BeginLaunch(job_id="j2"))
    w.do(_started("j2"))
    assert types(w.do(c.RecordExit(job_id="j2", code=0))) == [JobCompleted, BatchEnded]


def test_a_ready_batch_becomes_executing_when_a_member_starts() -> None:
    w = booted()
    w.run_to_launching("j1")
    batch_id = w.batch_of("j1")
    assert w.state.batches.active[batch_id].phase == "ready"
    w.do(_started())
    assert w.state.batches.active[batch_id].phase == "executing"


# -- legal outcomes: running and ending -----------------------------------------------------


def test_launch_steps_and_the_deadline_written_at_start() -> None:
    w = booted()
    w.run_to_preparing("j1", timeout_seconds=120.0)
    w.prepare("j1")
    assert types(w.do(c.RecordWorkspace(job_id="j1"))) == [JobWorkspaceCreated]
    assert w.do(c.RecordWorkspace(job_id="j1")) == []
    assert types(w.do(c.BeginLaunch(job_id="j1"))) == [JobLaunching]
    assert w.do(c.BeginLaunch(job_id="j1")) == []
    assert "j1" in w.state.jobs.attached
    [started] = w.do(_started())
    assert isinstance(started, JobProcessStarted)
    assert (started.started_at, started.deadline) == (w.now, w.now + 120.0)
    job = w.state.jobs.by_id["j1"]
    assert job.status == "running" and job.deadline == started.deadline


@pytest.mark.parametrize(
    ("seen", "ending", "status"),
    [
        (c.RecordExit(job_id="j1", code=0), JobCompleted, "completed"),
        (c.RecordExit(job_id="j1", code=3), JobFailed, "failed"),
        (c.RecordExit(job_id="j1"), JobLost, "lost"),
    ],
)
def test_record_exit(seen: c.RecordExit, ending: type, status: str) -> None:
    """The common cases; every observation in every status is in test_endings."""
    w = booted()
    w.run_to_running("j1")
    events = w.do(seen)
    assert types(events) == [ending, BatchEnded]
    job = w.state.jobs.by_id["j1"]
    assert job.status == status and job.ended_at == w.now
    if status == "failed":
        assert job.exit_code == 3 and "code 3" in (job.reason or "")
    assert "j1" not in w.state.jobs.attached and "j1" not in w.state.jobs.active


def test_an_exit_past_the_deadline_is_a_time_out() -> None:
    w = booted()
    w.run_to_running("j1", timeout_seconds=60.0)
    w.now += 60
    assert types(w.do(c.RecordExit(job_id="j1", code=137))) == [JobTimedOut, BatchEnded]


def test_stopped_at_the_deadline_is_a_time_out() -> None:
    w = booted()
    w.run_to_running("j1", timeout_seconds=60.0)
    w.now += 60
    stopped = c.RecordExit(job_id="j1", stopped="deadline")  # the wrapper left nothing
    assert types(w.do(stopped)) == [JobTimedOut, BatchEnded]
    assert w.status("j1") == "timed_out"


def test_fail_a_job_that_could_not_launch() -> None:
    w = booted()
    w.run_to_launching("j1")
    assert types(w.do(c.FailJob(job_id="j1", reason="binary missing"))) == [JobFailed, BatchEnded]
    assert w.state.jobs.by_id["j1"].reason == "binary missing"


def test_stale_heartbeat_and_reattach() -> None:
    w = booted()
    w.run_to_running("j1")
    w.run_to_running("j2", "web")
    w.do(c.StartServer(boot_id="boot-2", pid=2, version="t"))
    assert types(w.do(c.Reattach(job_id="j1", boot_id="boot-2"))) == [JobReattached]
    assert w.state.jobs.by_id["j1"].reattached == 1 and w.status("j1") == "running"
    stale = c.RecordStaleHeartbeat(job_id="j2", heartbeat_age=300.0)
    assert types(w.do(stale)) == [JobLost, BatchEnded]
    assert w.state.jobs.by_id["j2"].reason == "its heartbeat stopped 300 s ago"


def test_a_launching_job_with_a_damaged_run_directory_is_lost() -> None:
    w = booted()
    w.run_to_launching("j1")
    damaged = c.RecordDamagedRunDir(job_id="j1", error="identity: checksum mismatch")
    assert types(w.do(damaged)) == [JobLost, BatchEnded]
    reason = "its run directory is damaged: identity: checksum mismatch"
    assert w.state.jobs.by_id["j1"].reason == reason


def test_an_ending_makes_webhooks_due_and_marks_auto_cleanup() -> None:
    w = booted()
    w.run_to_running("j1", callbacks=[c.CallbackRequest(url="https://h")], auto_cleanup=True)
    events = w.do(c.RecordExit(job_id="j1", code=0))
    assert types(events) == [JobCompleted, CallbackDue, CleanupMarked, BatchEnded]
    due = events[1]
    assert isinstance(due, CallbackDue) and due.due_at == w.now and due.webhook_id
    assert w.state.jobs.by_id["j1"].cleanup_marked


# -- legal outcomes: cancel and delete ----------------------------------------------------


@pytest.mark.parametrize("stage", ["created", "queued", "waiting"])
def test_cancel_before_dispatch_or_while_waiting_is_immediate(stage: str) -> None:
    w = booted()
    w.run_to_preparing("j0")
    w.create("j1")
    if stage != "created":
        w.do(c.StartJob(job_id="j1"))
    if stage == "waiting":
        w.do(c.Dispatch())
    assert w.status("j1") == stage
    assert types(w.do(c.CancelJob(job_id="j1"))) == [JobCancelled]
    assert w.status("j1") == "cancelled"
    assert "j1" not in w.state.jobs.queue and w.state.jobs.waiters("api") == []
    assert "j1" not in w.state.jobs.active


def test_cancel_while_preparing_keeps_the_batch_until_its_preparation_ends() -> None:
    w = booted()
    w.run_to_preparing("j1")
    batch_id = w.batch_of("j1")
    assert types(w.do(c.CancelJob(job_id="j1"))) == [JobCancelled]
    assert w.state.locks.holder("api") is not None, "the pull in flight still holds the lock"
    assert types(w.prepare("j1")) == [BatchPrepared, LockReleased, BatchEnded]
    assert batch_id not in w.state.batches.active and w.state.locks.holder("api") is None


def test_cancel_of_a_launched_job_is_a_request_until_its_process_is_gone() -> None:
    w = booted()
    w.run_to_running("j1", callbacks=[c.CallbackRequest(url="https://h")])
    assert types(w.do(c.CancelJob(job_id="j1"))) == [JobCancelRequested]
    assert w.status("j1") == "cancelling" and "j1" in w.state.jobs.active
    assert w.do(c.CancelJob(job_id="j1")) == [], "already being cancelled"
    events = w.do(c.RecordExit(job_id="j1", code=0))
    assert types(events) == [JobCancelled, CallbackDue, BatchEnded]


def test_cancel_during_launch_ends_when_the_launch_fails() -> None:
    w = booted()
    w.run_to_launching("j1")
    w.do(c.CancelJob(job_id="j1"))
    assert w.status("j1") == "cancelling"
    assert types(w.do(c.FailJob(job_id="j1", reason="spawn failed"))) == [
        JobCancelled,
        BatchEnded,
    ]


def test_delete_of_a_finished_job_marks_its_workspace() -> None:
    w = booted()
    w.complete("j1")
    events = w.do(c.DeleteJob(job_id="j1"))
    assert types(events) == [JobDeleted, CleanupMarked, CleanupMarked]
    assert [e.path for e in events[1:] if isinstance(e, CleanupMarked)] == [
        "workspaces/j1",
        "runs/j1",
    ]
    assert w.state.jobs.by_id["j1"].deleted and w.status("j1") == "completed"


def test_delete_of_a_job_never_dispatched_cancels_and_deletes_it_at_once() -> None:
    w = booted()
    w.queue("j1")
    assert types(w.do(c.DeleteJob(job_id="j1"))) == [JobCancelled, JobDeleted]
    assert w.state.jobs.queue == {}


def test_delete_of_a_running_job_is_a_request_and_orphans_nothing() -> None:
    """Lock, batch, containers, network, staging, workspace: each stays known, owned by a job
    that still exists, until its own cleanup; only then can the job be purged."""
    w = booted()
    w.create("j1", sidecars=[Sidecar(name="db", image="postgres:16")])
    w.do(c.StartStaging(job_id="j1"))
    w.do(c.StageFile(job_id="j1", name="spec.md", size=3, sha256="cd" * 32))
    w.do(c.StartJob(job_id="j1"))
    w.queue("j2")
    w.do(c.Dispatch())
    assert w.status("j2") == "waiting"
    w.prepare("j1")
    w.do(c.RemoveStaging(path="staging/j1", reason="consumed"))
    w.do(c.RecordWorkspace(job_id="j1"))
    w.do(c.RecordNetwork(job_id="j1", network_id="net1"))
    w.do(c.RecordContainer(job_id="j1", container_id="ct1", sidecar="db"))
    w.do(c.BeginLaunch(job_id="j1"))
    w.do(_started())

    assert types(w.do(c.DeleteJob(job_id="j1"))) == [JobDeleteRequested]
    assert w.status("j1") == "deleting" and not deleted(w, "j1")
    assert "j1" in w.state.jobs.attached and "j1" in w.state.jobs.active
    assert w.do(c.DeleteJob(job_id="j1")) == []
    assert w.do(c.CancelJob(job_id="j1")) == []

    events = w.do(c.RecordExit(job_id="j1"))
    assert types(events) == [JobCancelled, JobDeleted, CleanupMarked, CleanupMarked, BatchEnded]
    assert deleted(w, "j1") and w.status("j1") == "cancelled"
    assert w.state.jobs.attached == {} and "j1" not in w.state.jobs.active
    assert w.state.resources.of_job("j1") == (["ct1"], ["net1"]), "still known, to be removed"
    assert "workspaces/j1" in w.state.cleanup.pending
    assert w.state.batches.active[w.batch_of("j2")].job_ids == ["j2"], "j2 prepares"

    w.now += SETTINGS.retention_seconds
    w.refuse(c.PurgeJob(job_id="j1"), "conflict", "job_busy")
    w.do(c.RecordRemoval(kind="container", resource_id="ct1"))
    w.do(c.RecordRemoval(kind="network", resource_id="net1"))
    w.do(c.FinishCleanup(path="workspaces/j1"))
    w.refuse(c.PurgeJob(job_id="j1"), "conflict", "job_busy")
    w.do(c.FinishCleanup(path="runs/j1"))
    assert types(w.do(c.PurgeJob(job_id="j1"))) == [JobPurged]
    assert "j1" not in w.state.jobs.by_id and w.state.jobs.purged


def test_delete_of_a_preparing_job_leaves_the_lock_to_its_batch() -> None:
    w = booted()
    w.run_to_preparing("j1")
    w.queue("j2")
    w.do(c.Dispatch())
    assert types(w.do(c.DeleteJob(job_id="j1"))) == [JobCancelled, JobDeleted, CleanupMarked]
    events = w.prepare("j1")
    assert types(events) == [BatchPrepared, LockReleased, BatchFormed, BatchEnded]
    assert w.status("j2") == "preparing"


def test_a_deleted_member_of_a_preparing_batch_is_purged_only_after_the_batch() -> None:
    """The batch still names it (and holds the lock for it) until its preparation ends."""
    w = booted()
    w.run_to_preparing("j1")
    w.do(c.DeleteJob(job_id="j1"))
    w.do(c.FinishCleanup(path="workspaces/j1"))
    w.now += SETTINGS.retention_seconds
    error = w.refuse(c.PurgeJob(job_id="j1"), "conflict", "job_busy")
    assert "batch" in error.message
    assert types(w.prepare("j1")) == [BatchPrepared, LockReleased, BatchEnded]
    assert types(w.do(c.PurgeJob(job_id="j1"))) == [JobPurged]


def test_delete_of_a_job_with_staging_keeps_the_staging_until_removed() -> None:
    w = booted()
    w.create("j1")
    w.do(c.StartStaging(job_id="j1"))
    assert types(w.do(c.DeleteJob(job_id="j1"))) == [JobCancelled, JobDeleted]
    assert w.state.staging.of_job("j1") == "staging/j1"
    w.now += SETTINGS.retention_seconds
    w.refuse(c.PurgeJob(job_id="j1"), "conflict", "job_busy")
    assert types(w.do(c.RemoveStaging(path="staging/j1", reason="deleted"))) == [StagingRemoved]
    assert types(w.do(c.PurgeJob(job_id="j1"))) == [JobPurged]


def test_a_deleted_job_is_gone_for_every_job_command() -> None:
    w = deleted_job()
    for command in (
        c.StartJob(job_id="j1"),
        c.CancelJob(job_id="j1"),
        c.DeleteJob(job_id="j1"),
        c.RetryCallback(job_id="j1", index=0),
        c.FailJob(job_id="j1", reason="x"),
    ):
        w.refuse(command, "not_found", "job_not_found")


# -- legal outcomes: webhooks ---------------------------------------------------------------


def test_a_webhook_delivered_first_time() -> None:
    w = callback_job()
    [started] = w.do(c.StartAttempt(callback_id="j1-cb0"))
    assert isinstance(started, CallbackAttemptStarted) and started.attempt == 1
    events = w.do(c.RecordAttempt(callback_id="j1-cb0", attempt=1, outcome="delivered"))
    assert types(events) == [CallbackAttemptSucceeded]
    delivery = w.state.callbacks.by_id["j1-cb0"]
    assert delivery.status == "delivered" and w.state.callbacks.pending == {}


def test_a_webhook_retried_on_its_schedule_then_given_up() -> None:
    w = callback_job()
    cid = "j1-cb0"
    w.do(c.StartAttempt(callback_id=cid))
    [failed] = w.do(c.RecordAttempt(callback_id=cid, attempt=1, outcome="retry", status=503))
    assert isinstance(failed, CallbackAttemptFailed) and failed.next_retry_at == w.now + 5.0
    w.now = failed.next_retry_at
    w.do(c.StartAttempt(callback_id=cid), advance=0)
    [failed] = w.do(
        c.RecordAttempt(callback_id=cid, attempt=2, outcome="retry", error="reset", retry_after=60)
    )
    assert isinstance(failed, CallbackAttemptFailed)
    assert failed.next_retry_at == w.now + 60.0, "Retry-After above the schedule is honoured"
    w.now += 60
    w.do(c.StartAttempt(callback_id=cid), advance=0)
    events = w.do(c.RecordAttempt(callback_id=cid, attempt=3, outcome="retry", status=502))
    assert types(events) == [CallbackAttemptFailed, CallbackGaveUp], "schedule exhausted"
    assert w.state.callbacks.by_id[cid].status == "gave_up"
    assert len(w.state.callbacks.by_id[cid].attempts) == 3


def test_a_4xx_gives_up_at_once_and_a_manual_retry_starts_a_new_round() -> None:
    w = gave_up()
    delivery = w.state.callbacks.by_id["j1-cb0"]
    assert delivery_status(w, "j1-cb0") == "gave_up" and delivery.attempts[0].status == 400
    assert types(w.do(c.RetryCallback(job_id="j1", index=0))) == [CallbackRetryRequested]
    assert delivery_status(w, "j1-cb0") == "pending" and delivery.round_attempts == 0
    [started] = w.do(c.StartAttempt(callback_id="j1-cb0"))
    assert isinstance(started, CallbackAttemptStarted) and started.attempt == 2


def test_an_attempt_cut_by_a_crash_is_sent_again() -> None:
    w = callback_job()
    w.do(c.StartAttempt(callback_id="j1-cb0"))
    [again] = w.do(c.StartAttempt(callback_id="j1-cb0"))
    assert isinstance(again, CallbackAttemptStarted) and again.attempt == 2
    first = w.state.callbacks.by_id["j1-cb0"].attempts[0]
    assert first.finished and first.error == "interrupted (no outcome recorded)"


# -- legal outcomes: cleanup, resources, staging -------------------------------------------


def test_cleanup_archive_fail_then_complete() -> None:
    w = deleted_job()
    path = "workspaces/j1"
    assert types(w.do(c.RecordArchived(path=path, archive="archive/j1.tar"))) == [CleanupArchived]
    [failed] = w.do(c.FinishCleanup(path=path, error="EBUSY"))
    assert isinstance(failed, CleanupFailed) and failed.next_retry_at == w.now + 5.0
    [failed] = w.do(c.FinishCleanup(path=path, error="EBUSY"))
    assert isinstance(failed, CleanupFailed) and failed.next_retry_at == w.now + 10.0
    cleanup = w.state.cleanup.pending[path]
    assert (cleanup.failures, cleanup.archive) == (2, "archive/j1.tar")
    assert types(w.do(c.FinishCleanup(path=path))) == [CleanupCompleted]
    assert list(w.state.cleanup.pending) == ["runs/j1"] and w.state.cleanup.completed == 1


def test_containers_networks_removal_failures_and_orphans() -> None:
    w = booted()
    w.create("j1", sidecars=[Sidecar(name="db", image="postgres:16")])
    made = w.do(c.RecordContainer(job_id="j1", container_id="ct1", sidecar="db"))
    assert made == [
        ContainerCreated(container_id="ct1", name="rewind-j1-db", image="postgres:16", job_id="j1")
    ]
    assert w.do(c.RecordContainer(job_id="j1", container_id="ct1", sidecar="db")) == []
    network = w.do(c.RecordNetwork(job_id="j1", network_id="nt1"))
    assert network == [NetworkCreated(network_id="nt1", name="rewind-j1", job_id="j1")]
    assert w.do(c.RecordNetwork(job_id="j1", network_id="nt1")) == []
    [failed] = w.do(c.RecordRemoval(kind="container", resource_id="ct1", error="in use"))
    assert isinstance(failed, ResourceRemovalFailed) and failed.next_retry_at == w.now + 5.0
    assert types(w.do(c.RecordRemoval(kind="container", resource_id="ct1"))) == [ContainerRemoved]
    assert types(w.do(c.RecordRemoval(kind="network", resource_id="nt1"))) == [NetworkRemoved]
    assert w.state.resources.failures == {}
    orphan = c.RecordOrphan(kind="container", resource_id="ct-x", job_id=None)
    assert types(w.do(orphan)) == [OrphanRemoved]
    assert w.state.resources.orphans_removed == 1


def test_staging_removal_reasons() -> None:
    w = booted()
    for job_id in ("j1", "j2", "j3"):
        w.create(job_id)
        w.do(c.StartStaging(job_id=job_id))
    w.refuse(c.RemoveStaging(path="staging/j1", reason="consumed"), "conflict", "staging_in_use")
    w.refuse(c.RemoveStaging(path="staging/j1", reason="deleted"), "conflict", "staging_in_use")
    w.refuse(c.RemoveStaging(path="staging/j1", reason="orphan"), "conflict", "staging_in_use")
    w.now += SETTINGS.staging_max_age_seconds
    assert types(w.do(c.RemoveStaging(path="staging/j1", reason="stale"))) == [StagingRemoved]
    w.do(c.StartJob(job_id="j2"))
    w.do(c.Dispatch())
    assert types(w.do(c.RemoveStaging(path="staging/j2", reason="consumed"))) == [StagingRemoved]
    w.do(c.CancelJob(job_id="j3"))
    assert types(w.do(c.RemoveStaging(path="staging/j3", reason="deleted"))) == [StagingRemoved]


# -- status and queue membership ------------------------------------------------------------


def test_status_and_queue_membership_agree_through_a_whole_lifecycle() -> None:
    """The indexes follow the status at every step (``World.do`` also runs ``check``)."""
    w = booted()

    def where(job_id: str) -> tuple[str, bool, bool, bool]:
        jobs = w.state.jobs
        waiting = job_id in jobs.waits.get("api", {})
        return (w.status(job_id), job_id in jobs.queue, waiting, job_id in jobs.active)

    w.run_to_preparing("j1")
    w.create("j2")
    assert where("j2") == ("created", False, False, False)
    w.do(c.StartJob(job_id="j2"))
    assert where("j2") == ("queued", True, False, False)
    w.do(c.Dispatch())
    assert where("j2") == ("waiting", False, True, True)
    w.prepare("j1")
    assert where("j2") == ("preparing", False, False, True)
    lock = w.state.locks.holder("api")
    assert lock is not None and lock.holder == w.batch_of("j2"), "the holder's status stays"
    w.prepare("j2")
    assert where("j2") == ("preparing", False, False, True)
    w.do(c.RecordWorkspace(job_id="j2"))
    w.do(c.BeginLaunch(job_id="j2"))
    w.do(_started("j2"))
    assert where("j2") == ("running", False, False, True)
    w.do(c.RecordExit(job_id="j2", code=1))
    assert where("j2") == ("failed", False, False, False)


# -- every command has a legal outcome ------------------------------------------------------


def test_every_command_type_is_exercised_with_a_legal_outcome() -> None:
    """One walk through a server's life in which every command produces events."""
    w = World()
    produced: set[type[c.Command]] = set()

    def do(command: c.Command, advance: float = 1.0) -> None:
        assert w.do(command, advance=advance), command
        produced.add(type(command))

    do(c.InitializeServer(server_id="s"))
    do(c.Configure(settings=SETTINGS))
    do(c.StartServer(boot_id="b1", pid=1, version="t"))
    do(c.CompleteRecovery(report=report()))
    do(c.RecordSnapshot(seq=4, file="4.snap"))
    do(c.AddUser(user_id="alice", username="alice", role="admin", password_hash=None))
    do(c.AddUser(user_id="bob", username="bob", role="user", password_hash=None))
    do(c.IssueToken(token_hash="t" * 64, user_id="bob", label="cli", ttl_seconds=None))
    do(c.RevokeToken(token_hash="t" * 64))
    do(c.RegisterRepo(repo="api", git_url="https://g/api.git", branch="main"))
    do(c.FinishClone(repo="api", error="timeout"))
    do(c.RetryClone(repo="api"))
    do(c.FinishClone(repo="api", commit="c0"))
    do(c.ChangeRepoSettings(repo="api", settings=RepoSettings(index_command=["x"])))
    sidecars = [Sidecar(name="db", image="postgres:16")]
    do(c.CreateJob(job_id="j1", owner="bob", prompt="p", repo="api", sidecars=sidecars))
    do(c.StartStaging(job_id="j1"))
    do(c.StageFile(job_id="j1", name="f", size=1, sha256="0" * 64))
    do(c.StartJob(job_id="j1"))
    do(c.Dispatch())
    batch = w.state.batches.active[w.batch_of("j1")]
    do(c.FinishPreparation(batch_id=batch.batch_id, generation=batch.generation, commit="c1"))
    do(c.RemoveStaging(path="staging/j1", reason="consumed"))
    do(c.RecordWorkspace(job_id="j1"))
    do(c.RecordContainer(job_id="j1", container_id="ct", sidecar="db"))
    do(c.RecordNetwork(job_id="j1", network_id="nt"))
    do(c.BeginLaunch(job_id="j1"))
    do(_started())
    do(c.Reattach(job_id="j1", boot_id="b1"))
    do(
        c.RecordExit(job_id="j1", signal=15, stopped="deadline"),
        advance=SETTINGS.default_timeout_seconds,
    )
    do(c.RecordRemoval(kind="container", resource_id="ct"))
    do(c.RecordRemoval(kind="network", resource_id="nt"))
    do(c.DeleteJob(job_id="j1"))
    do(c.RecordArchived(path="workspaces/j1", archive="a"))
    do(c.FinishCleanup(path="workspaces/j1"))
    do(c.FinishCleanup(path="runs/j1"))
    do(c.PurgeJob(job_id="j1"), advance=SETTINGS.retention_seconds)
    w.run_to_running("j2", callbacks=[c.CallbackRequest(url="https://h")])
    do(c.RecordExit(job_id="j2", code=0))
    do(c.StartAttempt(callback_id="j2-cb0"))
    do(c.RecordAttempt(callback_id="j2-cb0", attempt=1, outcome="give_up", status=410))
    do(c.RetryCallback(job_id="j2", index=0))
    w.run_to_launching("j3")
    do(c.RecordDamagedRunDir(job_id="j3", error="gone"))
    w.run_to_running("j6")
    do(c.RecordStaleHeartbeat(job_id="j6", heartbeat_age=None))
    w.run_to_launching("j4")
    do(c.FailJob(job_id="j4", reason="no binary"))
    w.queue("j5")
    do(c.CancelJob(job_id="j5"))
    do(c.RecordOrphan(kind="network", resource_id="nt-x", job_id=None))
    do(c.DegradeRepo(repo="api", reason="broken"))
    do(c.RestoreRepo(repo="api"))
    do(c.RemoveUser(user_id="bob"))
    do(c.RegisterRepo(repo="tmp", git_url="https://g/tmp.git", branch="main"))
    do(c.FinishClone(repo="tmp", commit="c"))
    do(c.UnregisterRepo(repo="tmp"))
    do(c.StopServer())
    assert produced == set(DECIDERS) - {c.ReleaseStaleLock}, "see the test below for that one"


def test_a_stale_lock_from_an_old_history_is_released_and_handed_on() -> None:
    """ReleaseStaleLock acts only on what decide never writes: here a v1-style history whose
    batch was prepared without giving its lock back, and a job waiting for that lock."""
    w = booted()
    w.run_to_preparing("j1")
    w.queue("j2")
    w.do(c.Dispatch())
    batch = w.state.batches.active[w.batch_of("j1")]
    w.fold(BatchPrepared(batch_id=batch.batch_id, commit="c1"))
    assert w.state.locks.holder("api") is not None and w.status("j2") == "waiting"
    events = w.do(c.ReleaseStaleLock(repo="api"))
    assert types(events) == [LockReleased, BatchFormed]
    assert isinstance(events[0], LockReleased) and events[0].reason == "stale-after-restart"
    assert w.status("j2") == "preparing"
    w.refuse(c.ReleaseStaleLock(repo="api"), "conflict", "lock_in_use")


# -- the illegal histories of issue 8 -------------------------------------------------------


@dataclass(frozen=True)
class IllegalHistory:
    """A legal prefix (through decide), proof that decide will not continue it illegally,
    and the hand-made continuation the folds must report."""

    setup: Callable[[], World]
    decide_refuses: Callable[[World], None]
    events: Callable[[World], list[Event]]
    finding: str


def _nothing_new(w: World, command: c.Command) -> None:
    before = encode_state(w.state)
    assert decide(w.state, command, w.now + 1) == []
    assert encode_state(w.state) == before


def _completed() -> World:
    w = booted()
    w.complete("j1")
    return w


def _three_waiters() -> World:
    w = booted()
    w.do(c.Configure(settings=msgspec.structs.replace(SETTINGS, max_concurrent=5)))
    w.run_to_preparing("j0")
    for job_id in ("j1", "j2", "j3"):
        w.queue(job_id)
    w.do(c.Dispatch())
    assert w.state.jobs.waiters("api") == ["j1", "j2", "j3"]
    return w


def _hand_off_is_fifo_and_whole(w: World) -> None:
    batch = w.state.batches.active[w.batch_of("j0")]
    finish = c.FinishPreparation(batch_id=batch.batch_id, generation=batch.generation, commit="c")
    formed = [e for e in decide(w.state, finish, w.now) if isinstance(e, BatchFormed)]
    assert [e.job_ids for e in formed] == [["j1", "j2", "j3"]]


def _lock_to_the_third_waiter(w: World) -> list[Event]:
    batch = w.state.batches.active[w.batch_of("j0")]
    return [
        BatchPrepared(batch_id=batch.batch_id, commit="c"),
        LockReleased(repo="api", holder=batch.batch_id, generation=batch.generation, reason="x"),
        BatchFormed(
            batch_id=w.state.batches.next_id(),
            repo="api",
            job_ids=["j3"],
            generation=batch.generation + 1,
            lease_expires_at=w.now + 60,
        ),
    ]


def _hundred_queued() -> World:
    w = booted()
    for n in range(100):
        w.queue(f"h{n:03d}")
    return w


def _dispatch_fills_only_free_slots(w: World) -> None:
    events = decide(w.state, c.Dispatch(), w.now)
    assert types(events) == [BatchFormed, JobWaiting, JobWaiting]


def _hundred_running(w: World) -> list[Event]:
    members = list(w.state.jobs.queue)
    batch_id = w.state.batches.next_id()
    events: list[Event] = [
        BatchFormed(
            batch_id=batch_id, repo="api", job_ids=members, generation=1, lease_expires_at=1.0
        ),
        BatchPrepared(batch_id=batch_id, commit="c"),
        LockReleased(repo="api", holder=batch_id, generation=1, reason="prepared"),
    ]
    for job_id in members:
        events += [
            JobWorkspaceCreated(job_id=job_id, path=f"workspaces/{job_id}"),
            JobLaunching(job_id=job_id, run_dir=f"runs/{job_id}"),
            JobProcessStarted(
                job_id=job_id, pid=1, process_start_time=1, boot_id="b", started_at=1, deadline=9
            ),
        ]
    return events


def _one_preparing_one_queued() -> World:
    w = booted()
    w.run_to_preparing("j1")
    w.queue("j2")
    return w


def _second_batch_without_lock(w: World) -> list[Event]:
    batch = w.state.batches.active[w.batch_of("j1")]
    return [
        LockReleased(repo="api", holder=batch.batch_id, generation=batch.generation, reason="x"),
        BatchFormed(
            batch_id=w.state.batches.next_id(),
            repo="api",
            job_ids=["j2"],
            generation=batch.generation + 1,
            lease_expires_at=w.now + 60,
        ),
    ]


def _web_job_queued() -> World:
    w = booted()
    w.queue("w1", "web")
    return w


def _web_job_locks_web(w: World) -> None:
    [formed] = decide(w.state, c.Dispatch(), w.now)
    assert isinstance(formed, BatchFormed) and formed.repo == "web"


def _executing() -> World:
    w = booted()
    w.run_to_running("j1")
    assert w.state.batches.active[w.batch_of("j1")].phase == "executing"
    return w


def _executing_batch_refuses_a_preparation(w: World) -> None:
    batch = w.state.batches.active[w.batch_of("j1")]
    finish = c.FinishPreparation(batch_id=batch.batch_id, generation=batch.generation, commit="c")
    w.refuse(finish, "conflict", "stale_preparation")


def _completed_cleanup() -> World:
    w = deleted_job()
    w.do(c.FinishCleanup(path="workspaces/j1"))
    return w


def _finished_job_cannot_fail(w: World) -> None:
    w.refuse(c.FailJob(job_id="j1", reason="x"), "conflict", "job_finished")
    w.refuse(c.RecordExit(job_id="j1", code=1), "conflict", "not_running")


def _finished_job_cannot_restart(w: World) -> None:
    w.refuse(c.StartJob(job_id="j1"), "conflict", "job_not_startable")


def _finished_job_cannot_be_cancelled(w: World) -> None:
    w.refuse(c.CancelJob(job_id="j1"), "conflict", "job_finished")


def _the_id_is_taken(w: World) -> None:
    w.refuse(_create(), "conflict", "job_exists")


def _the_second_job_waits(w: World) -> None:
    assert types(decide(w.state, c.Dispatch(), w.now)) == [JobWaiting]


def _no_outcome_after_give_up(w: World) -> None:
    delivered = c.RecordAttempt(callback_id="j1-cb0", attempt=1, outcome="delivered")
    w.refuse(delivered, "conflict", "attempt_not_in_flight")


def _a_cleanup_completes_once(w: World) -> None:
    w.refuse(c.FinishCleanup(path="workspaces/j1"), "not_found", "cleanup_not_found")


ILLEGAL_HISTORIES: Final[dict[str, IllegalHistory]] = {
    "completed then failed": IllegalHistory(
        _completed,
        _finished_job_cannot_fail,
        lambda w: [JobFailed(job_id="j1", reason="exit 1", exit_code=1, at=w.now)],
        "job.failed cannot happen to job 'j1' (completed)",
    ),
    "completed then enqueued": IllegalHistory(
        _completed,
        _finished_job_cannot_restart,
        lambda w: [JobEnqueued(job_id="j1", at=w.now)],
        "job.enqueued cannot happen to job 'j1' (completed)",
    ),
    "enqueued twice": IllegalHistory(
        _one_preparing_one_queued,
        lambda w: _nothing_new(w, c.StartJob(job_id="j2")),
        lambda w: [JobEnqueued(job_id="j2", at=w.now)],
        "job.enqueued cannot happen to job 'j2' (queued)",
    ),
    "cancelled after completing": IllegalHistory(
        _completed,
        _finished_job_cannot_be_cancelled,
        lambda w: [JobCancelled(job_id="j1", at=w.now)],
        "job.cancelled cannot happen to job 'j1' (completed)",
    ),
    "created twice with one id": IllegalHistory(
        _completed,
        _the_id_is_taken,
        lambda w: [next(e.event for e in w.log if isinstance(e.event, JobCreated))],
        "job 'j1' created twice",
    ),
    "the lock given to the third waiter while the first still waits": IllegalHistory(
        _three_waiters,
        _hand_off_is_fifo_and_whole,
        _lock_to_the_third_waiter,
        "skips earlier waiters of 'api'",
    ),
    "100 jobs running at once": IllegalHistory(
        _hundred_queued,
        _dispatch_fills_only_free_slots,
        _hundred_running,
        "dispatched with 3 jobs active (max_concurrent 3)",
    ),
    "two batches of one repository preparing with no lock held": IllegalHistory(
        _one_preparing_one_queued,
        _the_second_job_waits,
        _second_batch_without_lock,
        "released while 'batch-00000001' still works",
    ),
    "a lock on api held by a job of web": IllegalHistory(
        _web_job_queued,
        _web_job_locks_web,
        lambda w: [
            BatchFormed(
                batch_id="batch-x", repo="api", job_ids=["w1"], generation=1, lease_expires_at=1
            )
        ],
        "on 'api' has a job of another",
    ),
    "a batch going from executing back to preparing": IllegalHistory(
        _executing,
        _executing_batch_refuses_a_preparation,
        lambda w: [BatchPrepared(batch_id=w.batch_of("j1"), commit="c")],
        "went from executing to ready",
    ),
    "a batch formed again once executing": IllegalHistory(
        _executing,
        _executing_batch_refuses_a_preparation,
        lambda w: [
            BatchFormed(
                batch_id=w.batch_of("j1"),
                repo="api",
                job_ids=["j1"],
                generation=2,
                lease_expires_at=1,
            )
        ],
        "formed twice",
    ),
    "a callback attempt succeeding after give-up": IllegalHistory(
        gave_up,
        _no_outcome_after_give_up,
        lambda w: [CallbackAttemptSucceeded(callback_id="j1-cb0", attempt=1, status=200, at=1)],
        "outcome of attempt 1 of 'j1-cb0' not sent",
    ),
    "cleanup.completed twice": IllegalHistory(
        _completed_cleanup,
        _a_cleanup_completes_once,
        lambda w: [CleanupCompleted(path="workspaces/j1")],
        "cleanup of 'workspaces/j1' completed but it is not pending",
    ),
}


@pytest.mark.parametrize("name", list(ILLEGAL_HISTORIES))
def test_an_illegal_history_is_never_decided_and_always_reported(name: str) -> None:
    history = ILLEGAL_HISTORIES[name]
    w = history.setup()
    history.decide_refuses(w)
    assert check(w.state) == []
    for event in history.events(w):
        w.fold(event)
    problems = check(w.state)
    assert any(history.finding in p for p in problems), problems


@pytest.mark.parametrize("name", list(ILLEGAL_HISTORIES))
def test_verify_deep_reports_an_illegal_history_in_a_real_log(name: str, tmp_path: Path) -> None:
    """The same history written to a real log: the frames are sound, only --deep objects."""
    history = ILLEGAL_HISTORIES[name]
    w = history.setup()
    legal = [encode(envelope) for envelope in w.log]
    illegal = [encode(make(e, ts=w.now, actor="forger")) for e in history.events(w)]
    data_dir = make_data_dir(tmp_path / "data", legal + illegal)
    runner = CliRunner()
    shallow = runner.invoke(app, ["log", "verify", str(data_dir.root), "--json"])
    assert shallow.exit_code == 0, shallow.output
    deep = runner.invoke(app, ["log", "verify", str(data_dir.root), "--deep", "--json"])
    assert deep.exit_code == 1, deep.output
    findings = msgspec.json.decode(deep.stdout)["deep"]
    assert any(history.finding in finding for finding in findings), findings
    clean = make_data_dir(tmp_path / "clean", legal)
    assert runner.invoke(app, ["log", "verify", str(clean.root), "--deep"]).exit_code == 0
