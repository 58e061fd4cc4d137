"""The crash suite: a real server killed with SIGKILL at random moments while clients submit
and cancel jobs (quick, slow, failing, with webhooks, with sidecar containers, on several
repositories), restarted each time, and finally checked against every acknowledged request.

After every restart: the state loaded from disk breaks no rule (``projections.check``), which
covers FIFO dispatch, at most ``max_concurrent`` jobs active, one lock holder, one terminal
transition per job. At the end: every acknowledged job exists with what it was given and
ended as its agent's behaviour says; an agent running at a kill was re-attached (it ran once:
its output has every line once); every webhook arrived with one stable webhook-id; no
workspace, staging directory or labelled container is left; `rewind log verify --deep` is
clean; `rewind crashes` lists the crashes.

REWIND_CRASH_ROUNDS raises the number of kills (CI: 20).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from eventlog import EventLog
from projections import State, check
from projections.events import tag_of
from service.layout import DataDir
from service.secrets_store import SecretsStore
from service.state_store import events, load_state
from service.webhooks import verify
from tests.crash.workload import KINDS, Workload
from tests.effects.receiver import Receiver, running_receiver
from tests.support.docker_api import DockerAPI
from tests.support.server import (
    REWIND,
    RewindServer,
    git_repo,
    register,
    submit,
    wait_for,
)

ROUNDS = int(os.environ.get("REWIND_CRASH_ROUNDS", "20"))
MAX_CONCURRENT = 5
REPOS = ("api", "web", "docs")
TERMINAL = {"completed", "failed", "timed_out", "cancelled", "lost"}

pytestmark = pytest.mark.crash


def state_on_disk(data_dir: Path) -> State:
    state, _ = load_state(DataDir.at(data_dir))
    return state


def assert_consistent(data_dir: Path, when: str) -> State:
    state = state_on_disk(data_dir)
    problems = check(state)
    assert problems == [], f"{when}: {problems[:10]}"
    return state


def test_kill_9_at_random_moments_loses_nothing_acknowledged(
    tmp_path: Path, docker_api: DockerAPI
) -> None:
    rng = random.Random(int(os.environ.get("REWIND_CRASH_SEED", "20261126")))
    data_dir = tmp_path / "data"
    server = RewindServer(
        data_dir,
        env={"DOCKER_HOST": docker_api.base_url},
        max_concurrent=MAX_CONCURRENT,
        callback_schedule=[0.3, 0.5, 1.0, 1.0, 1.0, 1.0],
        kill_grace_seconds=1.0,
        snapshot_every=200,
    ).start()
    with running_receiver() as receiver:
        with server.client() as client:
            for name in REPOS:
                register(client, name, git_repo(tmp_path / "src" / name, {f"{name}.txt": name}))
        workload = Workload(server, list(REPOS), receiver.url, rng, docker_api.image)
        for round_number in range(ROUNDS):
            stop = threading.Event()
            clients = [
                threading.Thread(target=workload.run_until_killed, args=(stop,)) for _ in range(2)
            ]
            for thread in clients:
                thread.start()
            time.sleep(rng.uniform(0.3, 2.0))
            if round_number % 2:
                wait_running(server)
            server.kill()
            stop.set()
            for thread in clients:
                thread.join(30)
            assert_consistent(data_dir, f"after kill {round_number + 1}")
            server.start()
        final = finish(server, workload)
        server.stop()
        check_outcomes(data_dir, workload, final, receiver)
    check_nothing_left(data_dir, docker_api, final)
    check_log(data_dir)


def wait_running(server: RewindServer) -> None:
    """Half the kills wait for an agent to be running, so re-attachment is always tested."""
    with server.client(timeout=5) as client:
        try:
            wait_for(lambda: client.get("/jobs", params={"status": "running"}).json()["jobs"], 10)
        except (httpx.HTTPError, AssertionError):
            return


def finish(server: RewindServer, workload: Workload) -> dict[str, dict[str, Any]]:
    """Start what a kill left unstarted, then wait until every job and every effect is done."""
    with server.client() as client:
        for job in workload.jobs.values():
            if not job.started:
                answer = client.post(f"/jobs/{job.job_id}/start")
                if answer.status_code == 200:
                    job.started = True
                else:
                    assert client.get(f"/jobs/{job.job_id}").json()["status"] != "created"

        def settled() -> dict[str, dict[str, Any]] | None:
            jobs = {j: client.get(f"/jobs/{j}").json() for j in workload.jobs}
            if any(job["status"] not in TERMINAL for job in jobs.values()):
                return None
            metrics = client.get("/metrics").text
            if "rewind_callbacks_pending 0" not in metrics:
                return None
            if "rewind_cleanups_pending 0" not in metrics:
                return None
            return jobs

        result: dict[str, dict[str, Any]] = wait_for(settled, timeout=180, interval=0.5)
        return result


def check_outcomes(
    data_dir: Path,
    workload: Workload,
    final: dict[str, dict[str, Any]],
    receiver: Receiver,
) -> None:
    state = assert_consistent(data_dir, "at the end")
    assert len(workload.jobs) >= ROUNDS, "the workload should have submitted jobs every round"
    deliveries: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for request in receiver.requests:
        if len(request.body) != int(request.headers.get("content-length", "-1")):
            continue  # the server was killed mid-send: a cut request is no delivery
        body = msgspec.json.decode(request.body)
        deliveries[body["data"]["id"]].append(
            {"headers": request.headers, "body": body, "raw": request.body}
        )
    history = job_histories(state, data_dir)
    reattached = 0
    for job_id, submitted in workload.jobs.items():
        job = final[job_id]
        assert job["prompt"] == submitted.prompt and job["repository"] == submitted.repo
        assert job["options"]["autoCleanup"] is True
        assert job["status"] in submitted.expected, (submitted, job)
        if job["status"] in ("completed", "failed") and submitted.kind != "sidecar":
            assert job["exitCode"] == KINDS[submitted.kind][2], job
        if submitted.kind == "sidecar" and job["status"] == "failed":
            assert "sidecar" in (job["error"] or ""), job
        events = history[job_id]
        assert events.count("job.process-started") <= 1, (job_id, events)
        reattached += events.count("job.reattached")
        if submitted.kind == "slow" and job["status"] == "completed":
            output = (data_dir / "runs" / job_id / "output").read_text()
            for line in range(1, 7):
                assert output.count(f"line {line}\n") == 1, f"{job_id} ran twice:\n{output}"
        if submitted.callback:
            check_deliveries(job_id, job, deliveries.get(job_id, []), data_dir)
        else:
            assert job_id not in deliveries
    assert reattached > 0, "some agent should have been running at a kill"


def check_deliveries(
    job_id: str, job: dict[str, Any], got: list[dict[str, Any]], data_dir: Path
) -> None:
    assert got, f"no webhook for {job_id}"
    ids = {d["headers"]["webhook-id"] for d in got}
    assert ids == {f"msg_{job_id}-cb0"}, ids
    secret = SecretsStore(data_dir / "secrets").get(f"{job_id}-cb0")
    assert secret is not None
    for delivery in got:
        assert delivery["body"]["data"]["status"] == job["status"]
        sent_at = int(delivery["headers"]["webhook-timestamp"])
        verify(secret, delivery["headers"], delivery["raw"], now=sent_at)


def job_histories(state: State, data_dir: Path) -> dict[str, list[str]]:
    """Event types per job, in seq order, read once from the log at the seqs the state
    lists for each job."""
    owner = {seq: job_id for job_id, job in state.jobs.by_id.items() for seq in job.seqs}
    history: dict[str, list[str]] = defaultdict(list)
    with EventLog.open_readonly(data_dir / "log") as log:
        for seq, envelope in events(log):
            if seq in owner:
                history[owner[seq]].append(tag_of(type(envelope.event)))
    return history


def check_nothing_left(
    data_dir: Path, docker_api: DockerAPI, final: dict[str, dict[str, Any]]
) -> None:
    workspaces = data_dir / "workspaces"
    left = [p.name for p in workspaces.iterdir()] if workspaces.exists() else []
    assert left == [], f"workspaces of finished auto-cleanup jobs remain: {left}"
    staging = data_dir / "staging"
    assert not staging.exists() or not any(staging.iterdir())
    state = state_on_disk(data_dir)
    assert state.server.server_id is not None
    labelled = docker_api.gateway.list_labelled(state.server.server_id)
    assert labelled == [], labelled
    assert not state.resources.containers and not state.resources.networks


def check_log(data_dir: Path) -> None:
    verify_deep = subprocess.run(
        [str(REWIND), "log", "verify", str(data_dir), "--deep"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert verify_deep.returncode == 0, verify_deep.stdout + verify_deep.stderr
    crashes = subprocess.run(
        [str(REWIND), "crashes", str(data_dir), "--json"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert crashes.returncode == 0, crashes.stderr
    found = [json.loads(line) for line in crashes.stdout.splitlines()]
    assert len(found) == ROUNDS, f"{len(found)} crashes listed for {ROUNDS} kills"
    assert all(c["recovery"] is not None for c in found)


def test_kill_9_during_recovery_itself(tmp_path: Path) -> None:
    """Crashes inside startup recovery (double crashes) leave nothing half done: after a
    clean start everything completes, each agent ran once, and the rules hold."""
    rng = random.Random(7)
    data_dir = tmp_path / "data"
    server = RewindServer(data_dir, max_concurrent=4).start()
    with server.client() as client:
        register(client, "api", git_repo(tmp_path / "src"))
        jobs = [submit(client, "--lines 8 --interval 0.3", "api") for _ in range(4)]
        wait_for(lambda: all(client.get(f"/jobs/{j}").json()["status"] == "running" for j in jobs))
    server.kill()
    for _ in range(4):
        server.start(wait=False)
        time.sleep(rng.uniform(0.3, 1.5))
        server.kill()
        assert_consistent(data_dir, "after a crash during startup")
    server.start()
    with server.client() as client:
        for job_id in jobs:
            job = wait_for(
                lambda j=job_id: (b := client.get(f"/jobs/{j}").json())["status"] in TERMINAL and b,
                timeout=60,
            )
            assert job["status"] == "completed", job
            output = client.get(f"/jobs/{job_id}/output").text
            assert output.count("line 1\n") == 1 and "line 8" in output
    server.stop()
    state = assert_consistent(data_dir, "at the end")
    assert len(state.server.crash_seqs) >= 1


def test_clean_stop_is_not_a_crash(rewind_server: RewindServer) -> None:
    rewind_server.stop()
    rewind_server.start()
    crashes = subprocess.run(
        [str(REWIND), "crashes", str(rewind_server.data_dir), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert crashes.stdout == ""
    with httpx.Client(base_url=rewind_server.base_url) as client:
        assert client.get("/health").json()["status"] in ("ready", "degraded")
