"""A real Docker-compatible API for tests, shared by every test directory (tests/conftest.py
registers this module as a pytest plugin).

Where the API comes from, in order: DOCKER_HOST if something answers there (CI's .ci/run starts
podman and exports it); else a `podman system service` this fixture starts on a temporary
socket; else the session FAILS, saying how to install podman. Never a skip: a test that needs
Docker and does not run is a hole in the suite.

No registry is reachable here, so the fixture builds its image itself: a tiny rootfs tar made
in the test, imported through the API (the same operation as `podman import` / `docker
import`). Containers from it may not START on every machine (a sandbox can forbid the
runtime's setrlimit); creating, labelling, listing, inspecting and removing always work.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from service.containers import DockerGateway, DockerUnavailable

INSTALL_HINT = (
    "no Docker-compatible API for the container tests: DOCKER_HOST is unset or not answering, "
    "and podman is not installed. Install it (Debian: apt-get install -y podman) or run "
    "`podman system service --time=0 unix:///tmp/rewind-podman.sock` and export "
    "DOCKER_HOST=unix:///tmp/rewind-podman.sock"
)
STARTUP_LIMIT = 30.0


@dataclass(frozen=True)
class DockerAPI:
    base_url: str  # what a server subprocess gets as DOCKER_HOST
    gateway: DockerGateway
    image: str  # a tiny local image, unique to this test session


def _connect(base_url: str) -> DockerGateway | None:
    try:
        return DockerGateway.connect(base_url, probe_timeout=2.0)
    except DockerUnavailable:
        return None


def _start_podman(workdir: Path) -> tuple[subprocess.Popen[bytes], str, DockerGateway]:
    podman = shutil.which("podman")
    if podman is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    base_url = f"unix://{workdir / 'podman.sock'}"
    log = workdir / "podman-service.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [podman, "system", "service", "--time=0", base_url],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + STARTUP_LIMIT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"podman system service exited: {log.read_text()}", pytrace=False)
        if (workdir / "podman.sock").exists() and (gateway := _connect(base_url)) is not None:
            return process, base_url, gateway
        time.sleep(0.1)
    process.kill()
    process.wait()
    pytest.fail(f"podman system service did not answer within {STARTUP_LIMIT}s", pytrace=False)


def _rootfs_tar() -> bytes:
    """A minimal root filesystem: the usual top directories and one file to run or read."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in ("bin", "etc", "tmp", "proc", "sys", "dev"):
            entry = tarfile.TarInfo(directory)
            entry.type = tarfile.DIRTYPE
            entry.mode = 0o755
            tar.addfile(entry)
        content = b"#!/bin/sh\necho rewind sidecar\n"
        entry = tarfile.TarInfo("bin/sidecar")
        entry.size = len(content)
        entry.mode = 0o755
        tar.addfile(entry, io.BytesIO(content))
    return buffer.getvalue()


def _import_image(base_url: str) -> str:
    repository = f"localhost/rewind-test-{uuid.uuid4().hex[:12]}"
    client = docker.DockerClient(base_url=base_url, version="auto", timeout=60)
    try:
        client.api.import_image_from_data(
            _rootfs_tar(), repository=repository, tag="latest", changes=['CMD ["/bin/sidecar"]']
        )
        if not client.images.list(name=repository):
            raise RuntimeError(f"imported {repository} but the API does not list it")
    finally:
        client.close()
    return f"{repository}:latest"


def _remove_image(base_url: str, image: str) -> None:
    client = docker.DockerClient(base_url=base_url, version="auto", timeout=60)
    try:
        client.api.remove_image(image, force=True)
    except docker.errors.NotFound:
        pass
    finally:
        client.close()


@pytest.fixture(scope="session")
def docker_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerAPI]:
    process: subprocess.Popen[bytes] | None = None
    env_url = os.environ.get("DOCKER_HOST")
    gateway = _connect(env_url) if env_url else None
    if env_url and gateway is not None:
        base_url = env_url
    else:
        # A short directory: a unix socket path is limited to 107 bytes.
        workdir = Path(tmp_path_factory.mktemp("podman", numbered=True))
        process, base_url, gateway = _start_podman(workdir)
    image = _import_image(base_url)
    try:
        yield DockerAPI(base_url, gateway, image)
    finally:
        _remove_image(base_url, image)
        gateway.close()
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def docker_server_id(docker_api: DockerAPI) -> Iterator[str]:
    """A server id of this test's own: nothing another test (or helper) labels is ever under it.
    Whatever the test leaves labelled with it is removed afterwards."""
    server_id = f"test-{uuid.uuid4().hex[:12]}"
    yield server_id
    leftovers = docker_api.gateway.list_labelled(server_id)
    for item in sorted(leftovers, key=lambda x: x.kind):  # containers before networks
        if item.kind == "container":
            docker_api.gateway.remove_container(item.id)
        else:
            docker_api.gateway.remove_network(item.id)
