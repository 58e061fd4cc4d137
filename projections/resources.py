"""Docker containers and networks the server created and has not yet removed.

Knowing exactly what we created (and for which job) lets the orphan sweep remove only ours;
the sweep records what it found that the state did not know as ``orphan.removed``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from projections import jobs
from projections.envelope import Envelope
from projections.events import (
    ContainerCreated,
    ContainerRemoved,
    NetworkCreated,
    NetworkRemoved,
    OrphanRemoved,
    ResourceRemovalFailed,
)
from projections.handlers import Handlers

if TYPE_CHECKING:
    from projections.state import State


class RemovalFailure(msgspec.Struct, frozen=True, array_like=True, gc=False):
    error: str
    next_retry_at: float


class Resources(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    containers: dict[str, ContainerCreated] = msgspec.field(default_factory=dict)
    networks: dict[str, NetworkCreated] = msgspec.field(default_factory=dict)
    failures: dict[str, RemovalFailure] = msgspec.field(default_factory=dict)
    """Resource id -> its latest failed removal; cleared when it is removed."""
    orphans_removed: int = 0

    def of_job(self, job_id: str) -> tuple[list[str], list[str]]:
        """(container ids, network ids) created for ``job_id``, in creation order."""
        return (
            [cid for cid, c in self.containers.items() if c.job_id == job_id],
            [nid for nid, n in self.networks.items() if n.job_id == job_id],
        )

    def job_of(self, resource_id: str) -> str | None:
        found = self.containers.get(resource_id) or self.networks.get(resource_id)
        return None if found is None else found.job_id


def _container_created(state: State, seq: int, env: Envelope, ev: ContainerCreated) -> None:
    if jobs.touch(state, ev.job_id, seq) is None:
        state.note(f"seq {seq}: container {ev.container_id!r} of unknown job {ev.job_id!r}")
    state.resources.containers[ev.container_id] = ev


def _network_created(state: State, seq: int, env: Envelope, ev: NetworkCreated) -> None:
    if jobs.touch(state, ev.job_id, seq) is None:
        state.note(f"seq {seq}: network {ev.network_id!r} of unknown job {ev.job_id!r}")
    state.resources.networks[ev.network_id] = ev


def _removed(
    state: State,
    seq: int,
    table: dict[str, ContainerCreated] | dict[str, NetworkCreated],
    resource_id: str,
) -> None:
    found = table.pop(resource_id, None)
    if found is None:
        state.note(f"seq {seq}: unknown resource {resource_id!r} removed")
        return
    jobs.touch(state, found.job_id, seq)
    state.resources.failures.pop(resource_id, None)


def _container_removed(state: State, seq: int, env: Envelope, ev: ContainerRemoved) -> None:
    _removed(state, seq, state.resources.containers, ev.container_id)


def _network_removed(state: State, seq: int, env: Envelope, ev: NetworkRemoved) -> None:
    _removed(state, seq, state.resources.networks, ev.network_id)


def _removal_failed(state: State, seq: int, env: Envelope, ev: ResourceRemovalFailed) -> None:
    jobs.touch(state, state.resources.job_of(ev.resource_id), seq)
    state.resources.failures[ev.resource_id] = RemovalFailure(ev.error, ev.next_retry_at)


def _orphan_removed(state: State, seq: int, env: Envelope, ev: OrphanRemoved) -> None:
    jobs.touch(state, ev.job_id, seq)
    state.resources.orphans_removed += 1


HANDLERS: Handlers = {
    ContainerCreated: _container_created,
    ContainerRemoved: _container_removed,
    NetworkCreated: _network_created,
    NetworkRemoved: _network_removed,
    ResourceRemovalFailed: _removal_failed,
    OrphanRemoved: _orphan_removed,
}
