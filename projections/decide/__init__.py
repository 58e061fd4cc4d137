"""``decide(state, command, now) -> events``: the only place that judges what is legal.

Pure: the state is only read, ``now`` is the only clock, and ids come from the command or
from counters in the state. An illegal command raises ``DomainError`` with a stable code and
produces no events; a command that is already satisfied (cancel a job being cancelled, start a
queued job, the same idempotent create) produces no events and no error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from projections import commands as c
from projections.decide import (
    callbacks,
    effects,
    endings,
    jobs,
    repos,
    running,
    scheduling,
    server,
    users,
)
from projections.events import Event
from projections.state import State

Decider = Callable[[State, Any, float], list[Event]]

DECIDERS: Final[dict[type[c.Command], Decider]] = {
    c.InitializeServer: server.initialize,
    c.Configure: server.configure,
    c.StartServer: server.start,
    c.StopServer: server.stop,
    c.CompleteRecovery: server.complete_recovery,
    c.RecordSnapshot: server.record_snapshot,
    c.AddUser: users.add_user,
    c.RemoveUser: users.remove_user,
    c.IssueToken: users.issue_token,
    c.RevokeToken: users.revoke_token,
    c.RegisterRepo: repos.register,
    c.ChangeRepoSettings: repos.change_settings,
    c.FinishClone: repos.finish_clone,
    c.RetryClone: repos.retry_clone,
    c.DegradeRepo: repos.degrade,
    c.RestoreRepo: repos.restore,
    c.UnregisterRepo: repos.unregister,
    c.CreateJob: jobs.create,
    c.StartStaging: jobs.start_staging,
    c.StageFile: jobs.stage_file,
    c.StartJob: jobs.start,
    c.CancelJob: jobs.cancel,
    c.DeleteJob: jobs.delete,
    c.PurgeJob: jobs.purge,
    c.Dispatch: scheduling.dispatch,
    c.FinishPreparation: scheduling.finish_preparation,
    c.ReleaseStaleLock: scheduling.release_stale_lock,
    c.RecordWorkspace: running.record_workspace,
    c.BeginLaunch: running.begin_launch,
    c.RecordProcessStarted: running.record_process_started,
    c.RecordExit: endings.record_exit,
    c.RecordStaleHeartbeat: endings.record_stale_heartbeat,
    c.RecordDamagedRunDir: endings.record_damaged_run_dir,
    c.FailJob: running.fail,
    c.Reattach: running.reattach,
    c.StartAttempt: callbacks.start_attempt,
    c.RecordAttempt: callbacks.record_attempt,
    c.RetryCallback: callbacks.retry,
    c.RecordArchived: effects.record_archived,
    c.FinishCleanup: effects.finish_cleanup,
    c.RecordContainer: effects.record_container,
    c.RecordNetwork: effects.record_network,
    c.RecordRemoval: effects.record_removal,
    c.RecordOrphan: effects.record_orphan,
    c.RemoveStaging: effects.remove_staging,
}


def decide(state: State, command: c.Command, now: float) -> list[Event]:
    """The events that carry out ``command`` on ``state`` at time ``now``."""
    return DECIDERS[type(command)](state, command, now)
