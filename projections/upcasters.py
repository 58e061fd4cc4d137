"""Lifting old payloads to the current schema, one version step at a time.

v1 -> v2 (the domain-rules rework): locks became leases held by batches, statuses and queue
membership got one source, times that rules use moved into the events, callbacks got ids
derived from their job. An upcaster sees one event at a time, so it maps each v1 fact to its
v2 form where one exists and retires the rest (``event.retired`` keeps the seq, changes
nothing). A v1 history therefore replays completely and deterministically; where v1 allowed
what v2's rules forbid (a lock held by a job, a clone without a lock), the v2 folds record
anomalies, which is what ``verify --deep`` should say about such a history.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from projections.envelope import RawEnvelope, register_upcaster

RawEvent = dict[str, Any]
EventLift = Callable[[RawEvent, float], RawEvent]

_DEFAULT_SCHEDULE: Final = [5.0, 30.0, 120.0, 600.0, 3600.0]


def _settings(raw: dict[str, str]) -> dict[str, Any]:
    index = raw.get("index")
    return {"index_command": [index] if index else [], "default_agent": None, "env": {}}


def _retired(event: RawEvent, ts: float) -> RawEvent:
    return {"type": "event.retired", "original_type": event["type"]}


def _at(event: RawEvent, ts: float) -> RawEvent:
    return {**event, "at": ts}


def _user_added(event: RawEvent, ts: float) -> RawEvent:
    role = "admin" if event["role"] == "admin" else "user"
    return {
        "type": "user.added",
        "user_id": event["user_id"],
        "username": event["user_id"],
        "role": role,
        "password_hash": None,
    }


def _token_revoked(event: RawEvent, ts: float) -> RawEvent:
    return {**event, "reason": "revoked"}


def _repo_registered(event: RawEvent, ts: float) -> RawEvent:
    return {
        "type": "repo.registered",
        "repo": event["repo"],
        "git_url": event["git_url"],
        "branch": event["branch"],
        "description": "",
        "settings": _settings(event["settings"]),
    }


def _repo_clone_started(event: RawEvent, ts: float) -> RawEvent:
    return {**event, "generation": 0, "lease_expires_at": ts}


def _repo_settings(event: RawEvent, ts: float) -> RawEvent:
    return {**event, "settings": _settings(event["settings"])}


def _job_created(event: RawEvent, ts: float) -> RawEvent:
    options = event["options"]
    key = event["idempotency_key_hash"]
    return {
        "type": "job.created",
        "job_id": event["job_id"],
        "owner": event["owner"],
        "prompt": event["prompt"],
        "repo": event["repo"],
        "agent": event["agent"],
        "options": {
            "timeout_seconds": float(options.get("timeout", 3600)),
            "model": options.get("model"),
        },
        "callbacks": [
            {
                "callback_id": f"{event['job_id']}-cb{index}",
                "url": callback["url"],
                "schedule": _DEFAULT_SCHEDULE,
            }
            for index, callback in enumerate(event["callbacks"])
        ],
        "idempotency": None if key is None else {"key_hash": key, "body_hash": ""},
        "at": ts,
    }


def _wait_started(event: RawEvent, ts: float) -> RawEvent:
    return {"type": "job.waiting", "job_id": event["job_id"], "repo": event["repo"]}


def _batch_formed(event: RawEvent, ts: float) -> RawEvent:
    return {**event, "generation": 0, "lease_expires_at": ts}


def _batch_phase(event: RawEvent, ts: float) -> RawEvent:
    if event["phase"] == "ready":
        return {"type": "batch.prepared", "batch_id": event["batch_id"], "commit": ""}
    return _retired(event, ts)


def _process_started(event: RawEvent, ts: float) -> RawEvent:
    return {
        "type": "job.process-started",
        "job_id": event["job_id"],
        "pid": event["pid"],
        "process_start_time": event["process_start_time"],
        "boot_id": event["boot_id"],
        "started_at": ts,
        "deadline": ts + 3600.0,
    }


def _job_completed(event: RawEvent, ts: float) -> RawEvent:
    if event["exit_code"] == 0:
        return {"type": "job.completed", "job_id": event["job_id"], "at": ts}
    return {
        "type": "job.failed",
        "job_id": event["job_id"],
        "reason": f"the agent exited with code {event['exit_code']}",
        "exit_code": event["exit_code"],
        "at": ts,
    }


def _job_failed(event: RawEvent, ts: float) -> RawEvent:
    return {**event, "exit_code": None, "at": ts}


def _callback_scheduled(event: RawEvent, ts: float) -> RawEvent:
    return {
        "type": "callback.due",
        "callback_id": event["callback_id"],
        "job_id": event["job_id"],
        "webhook_id": f"msg_{event['callback_id']}",
        "due_at": event["due_at"],
    }


def _cleanup_failed(event: RawEvent, ts: float) -> RawEvent:
    return {**event, "next_retry_at": ts}


def _container_created(event: RawEvent, ts: float) -> RawEvent:
    return {**event, "image": "", "job_id": event["job_id"] or ""}


def _network_created(event: RawEvent, ts: float) -> RawEvent:
    return {**event, "job_id": event["job_id"] or ""}


def _staging_created(event: RawEvent, ts: float) -> RawEvent:
    return {**event, "at": ts}


def _staging_removed(event: RawEvent, ts: float) -> RawEvent:
    return {**event, "reason": "consumed"}


def _server_started(event: RawEvent, ts: float) -> RawEvent:
    return {**event, "at": ts}


def _recovery(event: RawEvent, ts: float) -> RawEvent:
    metrics = event["metrics"]
    return {
        "type": "recovery.completed",
        "report": {
            "phases": {"total": metrics["duration_s"]},
            "snapshot_seq": metrics["snapshot_seq"],
            "snapshots_skipped": [],
            "events_replayed": metrics["events_replayed"],
            "torn_bytes_cut": metrics["bytes_cut"],
            "zero_fill_trimmed": 0,
            "jobs_reattached": metrics["jobs_reattached"],
            "jobs_finished_while_down": 0,
            "jobs_lost": metrics["jobs_lost"],
            "jobs_relaunched": 0,
            "preparations_redone": 0,
            "locks_released": metrics["locks_released"],
            "callbacks_resumed": metrics["callbacks_resumed"],
            "cleanups_resumed": metrics["cleanups_resumed"],
            "orphans_removed": metrics["orphans_removed"],
            "repos_degraded": 0,
        },
    }


def _unchanged(event: RawEvent, ts: float) -> RawEvent:
    return event


V1_TO_V2: Final[dict[str, EventLift]] = {
    "user.added": _user_added,
    "user.removed": _unchanged,
    "token.issued": _unchanged,
    "token.revoked": _token_revoked,
    "repo.registered": _repo_registered,
    "repo.clone-started": _repo_clone_started,
    "repo.clone-completed": _unchanged,
    "repo.clone-failed": _unchanged,
    "repo.settings-changed": _repo_settings,
    "repo.degraded": _unchanged,
    "repo.unregistered": _unchanged,
    "job.created": _job_created,
    "job.file-staged": _unchanged,
    "job.file-unstaged": _retired,
    "job.enqueued": _at,
    "repo.wait-started": _wait_started,
    "repo.wait-ended": _retired,
    "job.batched": _retired,
    "job.preparing": _retired,
    "job.workspace-created": _unchanged,
    "job.process-started": _process_started,
    "job.reattached": _unchanged,
    "job.output-checkpoint": _retired,
    "job.completed": _job_completed,
    "job.failed": _job_failed,
    "job.timed-out": _at,
    "job.cancel-requested": _at,
    "job.cancelled": _at,
    "job.lost": _at,
    "job.deleted": _at,
    "lock.acquired": _retired,
    "lock.released": _retired,
    "batch.formed": _batch_formed,
    "batch.phase-changed": _batch_phase,
    "batch.ended": _unchanged,
    "callback.scheduled": _callback_scheduled,
    "callback.attempt-started": _at,
    "callback.attempt-succeeded": _at,
    "callback.attempt-failed": _unchanged,
    "callback.gave-up": _unchanged,
    "cleanup.marked": _unchanged,
    "cleanup.completed": _unchanged,
    "cleanup.failed": _cleanup_failed,
    "container.created": _container_created,
    "container.removed": _unchanged,
    "network.created": _network_created,
    "network.removed": _unchanged,
    "staging.created": _staging_created,
    "staging.removed": _staging_removed,
    "server.started": _server_started,
    "server.stopping": _at,
    "recovery.completed": _recovery,
    "snapshot.taken": _unchanged,
}


def v1_to_v2(raw: RawEnvelope) -> RawEnvelope:
    event = raw["event"]
    lift = V1_TO_V2.get(str(event.get("type"))) if isinstance(event, dict) else None
    if lift is None:
        return raw
    return {**raw, "event": lift(event, float(raw["ts"]))}


register_upcaster(1, v1_to_v2)
