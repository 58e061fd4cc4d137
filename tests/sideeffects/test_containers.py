"""Sidecar containers end to end: the real server against the podman service's Docker API.

A job declaring a sidecar gets a network and a container labelled with its id and the
server's; both are removed when the job ends, also when the server was killed between
recording the container and starting it; labelled leftovers of unknown or finished jobs are
swept at startup, anything else (unlabelled, another server's, a live job's) is left alone;
without a Docker API, jobs with sidecars are refused and the others run.

Containers cannot start on this machine, and the sidecar's command does not exist in its
image, so every start fails, on any machine: the job fails with a reason naming the sidecar.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.containers import JOB_LABEL, SERVER_LABEL, DockerGateway, labels
from tests.sideeffects.docker_gate import DockerGate
from tests.sideeffects.helpers import demo_repo, log_events, of_job, serving, wait_event
from tests.support.docker_api import DockerAPI
from tests.support.server import RewindServer, submit, wait_for, wait_terminal

MISSING_COMMAND = ["/rewind-test-no-such-command"]


@pytest.fixture(scope="module")
def gate(docker_api: DockerAPI) -> Iterator[DockerGate]:
    relay = DockerGate(docker_api.base_url)
    yield relay
    relay.close()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, docker_api: DockerAPI, gate: DockerGate
) -> Iterator[RewindServer]:
    root = tmp_path_factory.mktemp("containers")
    with serving(root / "data", env={"DOCKER_HOST": gate.base_url}) as started:
        demo_repo(started, root)
        try:
            yield started
        finally:
            remove_everything_labelled(docker_api.gateway, server_id(started))


def server_id(server: RewindServer) -> str:
    [initialized] = log_events(server.data_dir, "server.initialized")
    found: str = initialized["event"]["server_id"]
    return found


def remove_everything_labelled(gateway: DockerGateway, server: str) -> None:
    for item in sorted(gateway.list_labelled(server), key=lambda x: x.kind):
        if item.kind == "container":
            gateway.remove_container(item.id)
        else:
            gateway.remove_network(item.id)


def with_sidecar(client: httpx.Client, image: str, prompt: str = "--exit 0") -> str:
    sidecar = {"name": "index", "image": image, "command": MISSING_COMMAND, "env": {"K": "v"}}
    return submit(client, prompt, "demo", options={"sidecars": [sidecar]})


def labelled_for(gateway: DockerGateway, server: str, job_id: str) -> list[Any]:
    return [item for item in gateway.list_labelled(server) if item.job_id == job_id]


def assert_removed(server: RewindServer, gateway: DockerGateway, job_id: str) -> None:
    """Every container and network the log says the job had is recorded removed and gone."""
    rows = of_job(log_events(server.data_dir), job_id)
    containers = [r["event"]["container_id"] for r in rows if r["type"] == "container.created"]
    networks = [r["event"]["network_id"] for r in rows if r["type"] == "network.created"]
    assert len(containers) == 1 and len(networks) == 1, "one of each, never made twice"
    removed = {
        row["event"].get("container_id") or row["event"].get("network_id")
        for row in log_events(server.data_dir)
        if row["type"] in ("container.removed", "network.removed")
    }
    assert set(containers) | set(networks) <= removed
    assert labelled_for(gateway, server_id(server), job_id) == []
    assert gateway.inspect_container(containers[0]) is None


def test_a_sidecar_is_created_labelled_and_removed_when_the_job_ends(
    server: RewindServer, docker_api: DockerAPI
) -> None:
    with server.client() as client:
        job_id = with_sidecar(client, docker_api.image)
        job = wait_terminal(client, job_id)
    assert job["status"] == "failed"
    assert "sidecar" in job["error"] and "'index'" in job["error"], job["error"]
    wait_event(server.data_dir, "container.removed")
    wait_event(server.data_dir, "network.removed")
    wait_for(lambda: not labelled_for(docker_api.gateway, server_id(server), job_id))
    assert_removed(server, docker_api.gateway, job_id)
    created = wait_event(server.data_dir, "container.created", job_id=job_id)["event"]
    assert created["name"] == f"rewind-{job_id}-index" and created["image"] == docker_api.image


def test_kill_9_between_container_created_and_its_start_leaves_nothing_labelled(
    server: RewindServer, docker_api: DockerAPI, gate: DockerGate
) -> None:
    gateway = docker_api.gateway
    gate.hold("/start")
    with server.client() as client:
        job_id = with_sidecar(client, docker_api.image)
    assert gate.held.wait(60), "the server never tried to start the sidecar"
    created = wait_event(server.data_dir, "container.created", job_id=job_id)["event"]
    # Frozen between container.created and the start: the objects exist, labelled.
    info = gateway.inspect_container(created["container_id"])
    assert info is not None and not info.running
    assert info.labels[JOB_LABEL] == job_id and info.labels[SERVER_LABEL] == server_id(server)
    assert {item.kind for item in labelled_for(gateway, server_id(server), job_id)} == {
        "container",
        "network",
    }
    server.kill()
    gate.drop()

    server.start()
    with server.client() as client:
        job = wait_terminal(client, job_id)
    assert job["status"] == "failed" and "'index'" in job["error"]
    wait_for(lambda: not labelled_for(gateway, server_id(server), job_id))
    wait_for(lambda: _all_removed(server))
    assert_removed(server, gateway, job_id)


def _all_removed(server: RewindServer) -> bool:
    kinds = [row["type"] for row in log_events(server.data_dir)]
    return kinds.count("container.created") == kinds.count("container.removed") and kinds.count(
        "network.created"
    ) == kinds.count("network.removed")


def test_a_removal_that_fails_is_recorded_and_retried(
    server: RewindServer, docker_api: DockerAPI, gate: DockerGate
) -> None:
    """The Docker API drops the removal call: ``resource.removal-failed`` with the error and
    a retry time; the retry removes the container, then the network."""
    gate.hold("DELETE")
    with server.client() as client:
        job_id = with_sidecar(client, docker_api.image)
        wait_terminal(client, job_id)
    assert gate.held.wait(60), "the server never tried to remove the sidecar"
    assert b"/containers/" in gate.held_line
    gate.drop()
    created = wait_event(server.data_dir, "container.created", job_id=job_id)["event"]
    failed = wait_event(
        server.data_dir, "resource.removal-failed", resource_id=created["container_id"]
    )
    assert failed["event"]["kind"] == "container" and failed["event"]["error"]
    assert failed["event"]["next_retry_at"] >= failed["ts"] + 1.0, "no backoff"
    wait_event(server.data_dir, "container.removed", container_id=created["container_id"])
    wait_for(lambda: not labelled_for(docker_api.gateway, server_id(server), job_id))
    assert_removed(server, docker_api.gateway, job_id)


def test_the_startup_sweep_removes_labelled_orphans_and_nothing_else(
    server: RewindServer, docker_api: DockerAPI
) -> None:
    gateway = docker_api.gateway
    ours = server_id(server)
    with server.client() as client:
        unstarted = submit(client, "--exit 0", "demo", start=False)
        finished = submit(client, "--exit 0", "demo")
        wait_terminal(client, finished)
    server.kill()

    def container(job: str, label_with: dict[str, str]) -> str:
        return gateway.create_container(
            image=docker_api.image,
            command=MISSING_COMMAND,
            env={},
            name=f"by-hand-{uuid.uuid4().hex[:10]}",
            labels=label_with,
            network=None,
        )

    unknown_job = "job-" + uuid.uuid4().hex[:16]
    orphan_containers = {
        container(unknown_job, labels(unknown_job, ours)): unknown_job,
        container(finished, labels(finished, ours)): finished,
    }
    orphan_network = gateway.create_network(
        f"by-hand-{uuid.uuid4().hex[:10]}", labels(unknown_job, ours)
    )
    orphans = {*orphan_containers, orphan_network}
    other_server = f"test-{uuid.uuid4().hex[:12]}"
    kept = {
        container(unstarted, labels(unstarted, ours)),
        container(unknown_job, {}),
        container(unknown_job, {JOB_LABEL: unknown_job}),
        container(unknown_job, labels(unknown_job, other_server)),
    }
    try:
        server.start()
        with server.client() as client:
            report = client.get("/api/admin/recovery").json()["latest"]
        removed = {
            row["event"]["resource_id"]: row["event"]
            for row in log_events(server.data_dir, "orphan.removed")
        }
        assert orphans <= set(removed), "a labelled orphan was not swept at startup"
        assert not kept & set(removed), "the sweep removed something that was not its own"
        assert report["orphans_removed"] >= len(orphans)
        for orphan, job in orphan_containers.items():
            assert (removed[orphan]["kind"], removed[orphan]["job_id"]) == ("container", job)
            assert gateway.inspect_container(orphan) is None
        assert removed[orphan_network]["kind"] == "network"
        assert not [n for n in gateway.list_labelled(ours) if n.id in orphans]
        for survivor in kept:
            assert gateway.inspect_container(survivor) is not None, "an innocent was removed"
    finally:
        for leftover in kept | orphans:
            if leftover in {n.id for n in gateway.list_labelled(ours) if n.kind == "network"}:
                gateway.remove_network(leftover)
            else:
                gateway.remove_container(leftover)


def test_without_a_docker_api_jobs_with_sidecars_are_refused_and_the_others_run(
    tmp_path: Path, docker_api: DockerAPI
) -> None:
    dead = f"unix:///tmp/rewind-no-docker-{uuid.uuid4().hex[:8]}.sock"
    with serving(tmp_path / "data", env={"DOCKER_HOST": dead}) as server:
        demo_repo(server, tmp_path)
        with server.client() as client:
            sidecar = {"name": "index", "image": docker_api.image}
            refused = client.post(
                "/jobs",
                json={
                    "prompt": "--exit 0",
                    "repository": "demo",
                    "agent": "fake",
                    "options": {"sidecars": [sidecar]},
                },
            )
            assert refused.status_code == 503, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            problem = refused.json()
            assert (
                "Docker" in problem["detail"] and dead.removeprefix("unix://") in problem["detail"]
            )
            assert client.get("/jobs").json()["jobs"] == [], "the refused job was not created"
            job_id = submit(client, "--print still-works --exit 0", "demo")
            assert wait_terminal(client, job_id)["status"] == "completed"
            assert "still-works" in client.get(f"/jobs/{job_id}/output").text
