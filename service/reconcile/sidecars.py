"""Removing the containers and networks of finished jobs, and sweeping orphans: anything
labelled with this server's id whose job is finished or unknown (created just before a
crash, before it could be recorded). Containers go before their job's network."""

from __future__ import annotations

import time

import anyio

from projections.commands import RecordOrphan, RecordRemoval
from projections.events import ResourceKind
from service.containers import DockerError, DockerGateway
from service.reconcile.loop import record
from service.runtime import Runtime


def _finished(rt: Runtime, job_id: str) -> bool:
    job = rt.state.jobs.get(job_id)
    return job is None or job.terminal


def _due(rt: Runtime, resource_id: str, now: float) -> bool:
    failure = rt.state.resources.failures.get(resource_id)
    return failure is None or failure.next_retry_at <= now


async def start_removals(rt: Runtime) -> None:
    docker = rt.docker
    if docker is None:
        return
    resources = rt.state.resources
    now = time.time()
    busy_jobs = set()
    for cid, container in list(resources.containers.items()):
        if _finished(rt, container.job_id):
            busy_jobs.add(container.job_id)
            if _due(rt, cid, now):
                rt.tasks.start("remove", cid, remove, rt, docker, "container", cid)
    for nid, network in list(resources.networks.items()):
        if _finished(rt, network.job_id) and network.job_id not in busy_jobs and _due(rt, nid, now):
            rt.tasks.start("remove", nid, remove, rt, docker, "network", nid)


async def remove(rt: Runtime, docker: DockerGateway, kind: ResourceKind, resource_id: str) -> None:
    remover = docker.remove_container if kind == "container" else docker.remove_network
    try:
        await anyio.to_thread.run_sync(remover, resource_id)
    except DockerError as err:
        await record(rt, RecordRemoval(kind=kind, resource_id=resource_id, error=str(err)))
        return
    await record(rt, RecordRemoval(kind=kind, resource_id=resource_id))


async def sweep_orphans(rt: Runtime) -> int:
    """Remove labelled leftovers the state does not know (or whose job is finished);
    returns how many were removed."""
    docker = rt.docker
    if docker is None:
        return 0
    found = await anyio.to_thread.run_sync(docker.list_labelled, rt.server_id)
    resources = rt.state.resources
    removed = 0
    for item in sorted(found, key=lambda i: i.kind != "container"):
        known = item.id in resources.containers or item.id in resources.networks
        if known or not _finished(rt, item.job_id):
            continue
        remover = docker.remove_container if item.kind == "container" else docker.remove_network
        try:
            await anyio.to_thread.run_sync(remover, item.id)
        except DockerError:
            continue
        await record(rt, RecordOrphan(kind=item.kind, resource_id=item.id, job_id=item.job_id))
        removed += 1
    return removed
