"""Docker containers and networks the server created and has not yet removed.

Knowing exactly what we created (and for which job) lets the orphan sweep remove only ours.
"""

from __future__ import annotations

import msgspec

from projections.envelope import Envelope
from projections.events import ContainerCreated, ContainerRemoved, NetworkCreated, NetworkRemoved
from projections.handlers import Handlers


class Resources(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    containers: dict[str, ContainerCreated] = msgspec.field(default_factory=dict)
    networks: dict[str, NetworkCreated] = msgspec.field(default_factory=dict)

    def of_job(self, job_id: str) -> tuple[list[str], list[str]]:
        """(container ids, network ids) created for ``job_id``, in creation order."""
        return (
            [cid for cid, c in self.containers.items() if c.job_id == job_id],
            [nid for nid, n in self.networks.items() if n.job_id == job_id],
        )

    def _container_created(self, seq: int, env: Envelope, ev: ContainerCreated) -> None:
        self.containers[ev.container_id] = ev

    def _container_removed(self, seq: int, env: Envelope, ev: ContainerRemoved) -> None:
        self.containers.pop(ev.container_id, None)

    def _network_created(self, seq: int, env: Envelope, ev: NetworkCreated) -> None:
        self.networks[ev.network_id] = ev

    def _network_removed(self, seq: int, env: Envelope, ev: NetworkRemoved) -> None:
        self.networks.pop(ev.network_id, None)


HANDLERS: Handlers = {
    ContainerCreated: Resources._container_created,
    ContainerRemoved: Resources._container_removed,
    NetworkCreated: Resources._network_created,
    NetworkRemoved: Resources._network_removed,
}
