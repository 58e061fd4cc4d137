"""The Docker gateway against a real Docker-compatible API (podman's service in CI): create,
label, list, inspect, remove for real; start may be refused by this machine's runtime."""

from __future__ import annotations

import contextlib
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from service import containers
from service.containers import (
    JOB_LABEL,
    SERVER_LABEL,
    ContainerStartError,
    DockerGateway,
    DockerUnavailable,
    ImageNotFoundError,
    Labelled,
    NameConflictError,
    labels,
)
from tests.effects.socket_relay import SocketRelay
from tests.support.docker_api import DockerAPI


class ByHand:
    """What a person does with the docker SDK itself, never through the gateway; removed after
    the test whatever the gateway did."""

    def __init__(self, base_url: str, image: str) -> None:
        self.client: Any = docker.DockerClient(base_url=base_url, version="auto", timeout=60)
        self.image = image
        self.made: list[str] = []

    def container(self, hand_labels: dict[str, str]) -> str:
        created = self.client.api.create_container(
            self.image, name=f"hand-{uuid.uuid4().hex[:10]}", labels=hand_labels
        )
        self.made.append(created["Id"])
        return str(created["Id"])

    def close(self) -> None:
        for container_id in self.made:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.api.remove_container(container_id, force=True)
        self.client.close()


@pytest.fixture
def by_hand(docker_api: DockerAPI) -> Iterator[ByHand]:
    hand = ByHand(docker_api.base_url, docker_api.image)
    yield hand
    hand.close()


def sidecar(gw: DockerGateway, image: str, job: str, server: str, network: str | None) -> str:
    return gw.create_container(
        image=image,
        command=["/bin/sidecar", "--index"],
        env={"INDEX_ROOT": "/work"},
        name=f"{server}-{job}-sidecar",
        labels=labels(job, server),
        network=network,
    )


def test_labels_helper() -> None:
    assert labels("j1", "s1") == {JOB_LABEL: "j1", SERVER_LABEL: "s1"}
    assert (JOB_LABEL, SERVER_LABEL) == ("rewind.job", "rewind.server")
    with pytest.raises(ValueError):
        labels("", "s1")


def test_create_list_inspect_remove(docker_api: DockerAPI, docker_server_id: str) -> None:
    gw, sid = docker_api.gateway, docker_server_id
    network_id = gw.create_network(f"{sid}-job1", labels("job1", sid))
    container_id = sidecar(gw, docker_api.image, "job1", sid, f"{sid}-job1")

    listed = sorted(gw.list_labelled(sid), key=lambda x: x.kind)
    assert listed == [
        Labelled("container", container_id, f"{sid}-job1-sidecar", "job1"),
        Labelled("network", network_id, f"{sid}-job1", "job1"),
    ]

    info = gw.inspect_container(container_id)
    assert info is not None
    assert (info.id, info.name, info.image) == (
        container_id,
        f"{sid}-job1-sidecar",
        docker_api.image,
    )
    assert info.labels[JOB_LABEL] == "job1" and info.labels[SERVER_LABEL] == sid
    assert f"{sid}-job1" in info.networks
    assert (info.running, info.exit_code) == (False, None)

    gw.remove_container(container_id)
    gw.remove_network(network_id)
    assert gw.list_labelled(sid) == []
    assert gw.inspect_container(container_id) is None


def test_remove_is_idempotent(docker_api: DockerAPI, docker_server_id: str) -> None:
    gw, sid = docker_api.gateway, docker_server_id
    network_id = gw.create_network(f"{sid}-net", labels("j", sid))
    container_id = sidecar(gw, docker_api.image, "j", sid, None)
    for _ in range(2):
        gw.remove_container(container_id)
        gw.remove_network(network_id)
    never = uuid.uuid4().hex * 2
    gw.remove_container(never)
    gw.remove_network(never)
    assert gw.list_labelled(sid) == []


def test_create_repeated_after_a_crash_returns_the_same_object(
    docker_api: DockerAPI, docker_server_id: str
) -> None:
    """A reconciler that re-runs an intent whose outcome was not recorded gets the object it
    made the first time, not an error and not a second object."""
    gw, sid = docker_api.gateway, docker_server_id
    network_id = gw.create_network(f"{sid}-net", labels("j", sid))
    assert gw.create_network(f"{sid}-net", labels("j", sid)) == network_id
    container_id = sidecar(gw, docker_api.image, "j", sid, f"{sid}-net")
    assert sidecar(gw, docker_api.image, "j", sid, f"{sid}-net") == container_id
    assert len(gw.list_labelled(sid)) == 2


def test_a_name_taken_by_another_job_is_a_conflict(
    docker_api: DockerAPI, docker_server_id: str
) -> None:
    gw, sid = docker_api.gateway, docker_server_id
    gw.create_network(f"{sid}-net", labels("j", sid))
    with pytest.raises(NameConflictError, match="not ours"):
        gw.create_network(f"{sid}-net", labels("other-job", sid))
    gw.create_container(
        image=docker_api.image,
        command=None,
        env={},
        name=f"{sid}-c",
        labels=labels("j", sid),
        network=None,
    )
    with pytest.raises(NameConflictError):
        gw.create_container(
            image=docker_api.image,
            command=None,
            env={},
            name=f"{sid}-c",
            labels=labels("other-job", sid),
            network=None,
        )


def test_missing_image_is_a_typed_error(docker_api: DockerAPI, docker_server_id: str) -> None:
    with pytest.raises(ImageNotFoundError):
        sidecar(docker_api.gateway, f"localhost/absent-{uuid.uuid4().hex}:1", "j", "s", None)
    assert docker_api.gateway.list_labelled(docker_server_id) == []


def test_hand_labelled_container_of_unknown_job_is_listed(
    docker_api: DockerAPI, docker_server_id: str, by_hand: ByHand
) -> None:
    """The sweep (the service's) removes what this lists when the job is unknown: the listing
    must not depend on the server having created it."""
    ghost = by_hand.container(labels("ghost-job", docker_server_id))
    listed = docker_api.gateway.list_labelled(docker_server_id)
    assert [(x.kind, x.id, x.job_id) for x in listed] == [("container", ghost, "ghost-job")]


def _sweep(gw: DockerGateway, server_id: str) -> None:
    """What the service's sweep does at most: remove everything the listing returns."""
    for item in gw.list_labelled(server_id):
        if item.kind == "container":
            gw.remove_container(item.id)


def test_unlabelled_and_foreign_are_never_listed_nor_removed(
    docker_api: DockerAPI, docker_server_id: str, by_hand: ByHand
) -> None:
    gw, sid = docker_api.gateway, docker_server_id
    other_server = f"other-{uuid.uuid4().hex[:8]}"
    ours = by_hand.container(labels("j", sid))
    untouchable = {
        "unlabelled": by_hand.container({}),
        "server label only": by_hand.container({SERVER_LABEL: sid}),
        "job label only": by_hand.container({JOB_LABEL: "j"}),
        "another server": by_hand.container(labels("j", other_server)),
        "prefix of our id": by_hand.container(labels("j", sid[:-1])),
    }
    assert [x.id for x in gw.list_labelled(sid)] == [ours]
    assert [x.id for x in gw.list_labelled(other_server)] == [untouchable["another server"]]

    _sweep(gw, sid)
    assert gw.inspect_container(ours) is None
    for what, container_id in untouchable.items():
        assert gw.inspect_container(container_id) is not None, what


def _naive_list(client: Any, server_id: str) -> list[str]:
    """Deliberately broken: filters on the label's presence, not its value (a common slip)."""
    return [c["Id"] for c in client.api.containers(all=True, filters={"label": [SERVER_LABEL]})]


def test_labels_are_checked_here_too() -> None:
    """The listing re-checks what the daemon's label filter returned: a daemon that ignored the
    filter must not make the sweep remove another server's objects."""
    assert containers._ours(labels("j", "s1"), "s1") == "j"
    assert containers._ours(labels("j", "s2"), "s1") is None
    assert containers._ours({SERVER_LABEL: "s1"}, "s1") is None
    assert containers._ours({SERVER_LABEL: "s1", JOB_LABEL: ""}, "s1") is None
    assert containers._ours(None, "s1") is None


def test_naive_listing_is_caught(
    docker_api: DockerAPI, docker_server_id: str, by_hand: ByHand
) -> None:
    """The check above, applied to a listing that ignores the server id, fails: it would make
    this server's sweep remove another server's containers."""
    ours = by_hand.container(labels("j", docker_server_id))
    foreign = by_hand.container(labels("j", f"other-{uuid.uuid4().hex[:8]}"))
    assert [x.id for x in docker_api.gateway.list_labelled(docker_server_id)] == [ours]
    naive = _naive_list(by_hand.client, docker_server_id)
    assert ours in naive
    assert foreign in naive


def test_start_fails_typed_or_runs(docker_api: DockerAPI, docker_server_id: str) -> None:
    """Whether this machine's runtime can start a container varies (sandboxes refuse crun's
    setrlimit); the contract does not: success, or ContainerStartError with the daemon's
    reason, and the container still exists to be inspected and removed."""
    gw = docker_api.gateway
    container_id = sidecar(gw, docker_api.image, "j", docker_server_id, None)
    try:
        gw.start_container(container_id)
    except ContainerStartError as exc:
        assert str(exc).startswith(f"start container {container_id[:12]}: ")
        assert len(str(exc)) > len(f"start container {container_id[:12]}: ")
    info = gw.inspect_container(container_id)
    assert info is not None and info.id == container_id
    gw.remove_container(container_id)
    assert gw.inspect_container(container_id) is None


def test_start_of_a_missing_container_is_a_start_error(docker_api: DockerAPI) -> None:
    with pytest.raises(ContainerStartError):
        docker_api.gateway.start_container(uuid.uuid4().hex * 2)


# ---------------------------------------------------------------------------------------------
# No API


@pytest.mark.timeout(30)
def test_unavailable_for_a_socket_path_with_nothing_behind_it(tmp_path: Path) -> None:
    with pytest.raises(DockerUnavailable, match="no Docker-compatible API answers at unix://"):
        DockerGateway.connect(f"unix://{tmp_path / 'absent.sock'}", probe_timeout=1.0)

    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as bound_only:
        bound_only.bind(str(stale))
        with pytest.raises(DockerUnavailable, match="DOCKER_HOST"):
            DockerGateway.connect(f"unix://{stale}", probe_timeout=1.0)


@pytest.mark.timeout(30)
def test_unavailable_for_a_socket_that_never_answers(tmp_path: Path) -> None:
    """Connects, but nothing ever replies: only the probe timeout ends it (the test's own
    timeout marker bounds it, not a timing assertion)."""
    silent = tmp_path / "silent.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(silent))
        listener.listen(1)
        with pytest.raises(DockerUnavailable):
            DockerGateway.connect(f"unix://{silent}", probe_timeout=0.5)


def test_connect_uses_docker_host(docker_api: DockerAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_api.base_url)
    gw = DockerGateway.connect()
    try:
        assert gw.where == docker_api.base_url
        assert gw.list_labelled(f"nobody-{uuid.uuid4().hex}") == []
    finally:
        gw.close()
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/rewind.sock")
    with pytest.raises(DockerUnavailable, match=re.escape("/nonexistent/rewind.sock")):
        DockerGateway.connect(probe_timeout=1.0)


def test_api_going_away_is_unavailable(docker_api: DockerAPI, tmp_path: Path) -> None:
    upstream = docker_api.base_url.removeprefix("unix://")
    if upstream == docker_api.base_url:
        pytest.fail(f"the relay needs a unix socket API, got {docker_api.base_url}")
    relay = SocketRelay(tmp_path / "relay.sock", upstream)
    gw = DockerGateway.connect(relay.base_url)
    try:
        assert gw.list_labelled(f"nobody-{uuid.uuid4().hex}") == []
        relay.stop()
        with pytest.raises(DockerUnavailable, match="stopped answering"):
            gw.list_labelled("anyone")
        with pytest.raises(DockerUnavailable):
            gw.remove_container(uuid.uuid4().hex)
        with pytest.raises(DockerUnavailable):
            gw.inspect_container(uuid.uuid4().hex)
    finally:
        gw.close()
