"""Sidecar containers and per-job networks through any Docker-compatible API (Docker, podman).

Everything the server creates carries two labels, `rewind.job=<job id>` and
`rewind.server=<server id>`. The labels, not the server's memory, are what the orphan sweep
trusts: after a crash, `list_labelled(server_id)` finds every container and network this server
made, whatever the log managed to record. Something without both labels, or with another
server's id, is never listed, and so never removed.

Every method is a blocking call of the docker SDK (HTTP over a socket). The service runs them
off the event loop, e.g. `await anyio.to_thread.run_sync(gateway.remove_container, cid)`;
concurrent calls from worker threads share the SDK's urllib3 connection pool, which is
thread-safe. Create and remove are idempotent so that a reconciler can repeat them after a
crash: creating a name that already exists with the same rewind labels returns the existing
object, removing something already gone succeeds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import docker
import docker.errors
import requests

JOB_LABEL = "rewind.job"
SERVER_LABEL = "rewind.server"
DEFAULT_SOCKET = "unix:///var/run/docker.sock"


class DockerError(Exception):
    """A Docker API call failed; the message carries the daemon's own explanation."""


class DockerUnavailable(DockerError):  # noqa: N818 (named as the state it reports, like a 503)
    """No Docker-compatible API answers (at connect, or it went away since)."""


class ImageNotFoundError(DockerError):
    """The image is not present locally. Nothing is pulled: a job names images that exist."""


class NameConflictError(DockerError):
    """The name is taken by an object that is not this job's (different rewind labels)."""


class ContainerStartError(DockerError):
    """The daemon created the container but could not start it (runtime, permissions)."""


@dataclass(frozen=True)
class Labelled:
    kind: Literal["container", "network"]
    id: str
    name: str
    job_id: str


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    image: str
    status: str
    running: bool
    exit_code: int | None
    labels: Mapping[str, str]
    networks: tuple[str, ...]


def labels(job_id: str, server_id: str) -> dict[str, str]:
    """The labels that make an object this server's and this job's."""
    if not job_id or not server_id:
        raise ValueError("job id and server id must be non-empty")
    return {JOB_LABEL: job_id, SERVER_LABEL: server_id}


def _ours(found: Mapping[str, str] | None, server_id: str) -> str | None:
    """The job id if `found` carries both labels for `server_id`, else None. Checked here even
    though the daemon filters by label too: a daemon that ignored the filter must not make the
    sweep remove someone else's containers."""
    found = found or {}
    if found.get(SERVER_LABEL) != server_id:
        return None
    return found.get(JOB_LABEL) or None


class DockerGateway:
    def __init__(self, client: docker.DockerClient, where: str) -> None:
        self._client = client
        self._api = client.api
        self.where = where

    @classmethod
    def connect(
        cls, base_url: str | None = None, *, probe_timeout: float = 3.0, timeout: float = 60.0
    ) -> DockerGateway:
        """Connect to `base_url`, or to DOCKER_HOST (with its TLS variables) when None.

        The first request (the API version) is bounded by `probe_timeout`, so a server without
        Docker starts quickly and refuses only the jobs that need containers.
        """
        where = base_url or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET
        try:
            probe = _client(base_url, version="auto", timeout=probe_timeout)
        except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
            raise DockerUnavailable(
                f"no Docker-compatible API answers at {where} within {probe_timeout}s ({exc}); "
                "set DOCKER_HOST, e.g. to a podman service: "
                "podman system service --time=0 unix:///tmp/rewind-podman.sock"
            ) from None
        version = probe.api.api_version
        probe.close()
        return cls(_client(base_url, version=version, timeout=timeout), where)

    def close(self) -> None:
        self._client.close()

    @contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        try:
            yield
        except docker.errors.ImageNotFound as exc:
            raise ImageNotFoundError(f"{what}: {exc.explanation}") from None
        except docker.errors.APIError as exc:
            raise DockerError(f"{what}: {exc.explanation or exc}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            msg = f"{what}: Docker API at {self.where} stopped answering: {exc}"
            raise DockerUnavailable(msg) from None

    def create_network(self, name: str, labels: Mapping[str, str]) -> str:
        """Create a bridge network; return its id (the existing one if this job made it)."""
        try:
            with self._calling(f"create network {name!r}"):
                created: Any = self._api.create_network(name, labels=dict(labels))
                return str(created["Id"])
        except (DockerUnavailable, ImageNotFoundError):
            raise
        except DockerError:
            existing = self._existing(self._api.inspect_network, name, labels)
            if existing is None:
                raise
            return existing

    def create_container(
        self,
        *,
        image: str,
        command: Sequence[str] | None,
        env: Mapping[str, str],
        name: str,
        labels: Mapping[str, str],
        network: str | None,
    ) -> str:
        """Create (not start) a container; return its id (the existing one if this job made
        it). The image must be present: nothing is pulled."""
        try:
            with self._calling(f"create container {name!r} from {image!r}"):
                host_config = self._api.create_host_config(network_mode=network)
                created: Any = self._api.create_container(
                    image,
                    command=list(command) if command is not None else None,
                    environment=dict(env),
                    name=name,
                    labels=dict(labels),
                    host_config=host_config,
                )
                return str(created["Id"])
        except (DockerUnavailable, ImageNotFoundError):
            raise
        except DockerError:
            existing = self._existing(self._api.inspect_container, name, labels)
            if existing is None:
                raise
            return existing

    def _existing(self, inspect: Any, name: str, wanted: Mapping[str, str]) -> str | None:
        """After a failed create: the object of that name if it carries the same rewind labels
        (a create repeated after a crash); NameConflictError if it belongs to someone else."""
        try:
            with self._calling(f"inspect {name!r}"):
                found: Any = inspect(name)
        except DockerUnavailable:
            raise
        except DockerError:
            return None
        found_labels = (found.get("Config") or {}).get("Labels") or found.get("Labels") or {}
        mine = {k: wanted.get(k) for k in (JOB_LABEL, SERVER_LABEL)}
        if {k: found_labels.get(k) for k in mine} != mine:
            raise NameConflictError(f"name {name!r} is taken by {str(found['Id'])[:12]}, not ours")
        return str(found["Id"])

    def start_container(self, container_id: str) -> None:
        """Start it. Raises ContainerStartError with the daemon's message (e.g. a runtime that
        cannot run here); the caller records the failure and decides what the job does."""
        try:
            with self._calling(f"start container {container_id[:12]}"):
                self._api.start(container_id)
        except DockerUnavailable:
            raise
        except DockerError as exc:
            raise ContainerStartError(str(exc)) from None

    def list_labelled(self, server_id: str) -> list[Labelled]:
        """Every container (running or not) and network carrying this server's labels."""
        label = [f"{SERVER_LABEL}={server_id}"]
        with self._calling("list labelled containers and networks"):
            containers: Any = self._api.containers(all=True, filters={"label": label})
            networks: Any = self._api.networks(filters={"label": label})
        found: list[Labelled] = []
        for c in containers:
            job = _ours(c.get("Labels"), server_id)
            if job is not None:
                name = (c.get("Names") or [""])[0].lstrip("/")
                found.append(Labelled("container", str(c["Id"]), name, job))
        for n in networks:
            job = _ours(n.get("Labels"), server_id)
            if job is not None:
                found.append(Labelled("network", str(n["Id"]), str(n["Name"]), job))
        return found

    def inspect_container(self, container_id: str) -> ContainerInfo | None:
        """The container's state, or None if it does not exist."""
        try:
            with self._calling(f"inspect container {container_id[:12]}"):
                raw: Any = self._api.inspect_container(container_id)
        except DockerError:
            if self._gone(self._api.inspect_container, container_id):
                return None
            raise
        state = raw.get("State") or {}
        running = bool(state.get("Running"))
        finished = not running and state.get("Status") in ("exited", "stopped", "dead")
        return ContainerInfo(
            id=str(raw["Id"]),
            name=str(raw.get("Name", "")).lstrip("/"),
            image=str((raw.get("Config") or {}).get("Image", "")),
            status=str(state.get("Status", "")),
            running=running,
            exit_code=int(state["ExitCode"]) if finished else None,
            labels=dict((raw.get("Config") or {}).get("Labels") or {}),
            networks=tuple((raw.get("NetworkSettings") or {}).get("Networks") or {}),
        )

    def remove_container(self, container_id: str) -> None:
        """Remove it, killing it first if it runs. Already gone is success."""
        try:
            with self._calling(f"remove container {container_id[:12]}"):
                self._api.remove_container(container_id, force=True, v=True)
        except DockerError:
            if not self._gone(self._api.inspect_container, container_id):
                raise

    def remove_network(self, network_id: str) -> None:
        """Remove it. Already gone is success. Remove its containers first (Docker refuses a
        network with endpoints)."""
        try:
            with self._calling(f"remove network {network_id[:12]}"):
                self._api.remove_network(network_id)
        except DockerError:
            if not self._gone(self._api.inspect_network, network_id):
                raise

    def _gone(self, inspect: Any, object_id: str) -> bool:
        try:
            inspect(object_id)
        except docker.errors.NotFound:
            return True
        except (docker.errors.APIError, requests.RequestException):
            return False
        return False


def _client(base_url: str | None, *, version: str, timeout: float) -> docker.DockerClient:
    if base_url is None:
        return docker.DockerClient.from_env(version=version, timeout=timeout)
    return docker.DockerClient(base_url=base_url, version=version, timeout=timeout)
