"""From a prepared batch to a running agent: the job's workspace (a copy-on-write clone of
the prepared repository, plus its staged files), its sidecar containers, then the launch.

Each step is idempotent and recorded before the next starts. The launch itself is an intent
(``job.launching``, durable first) and an outcome (``job.process-started`` with the process
identity); a crash between them is resolved by the watcher from the run directory.
"""

from __future__ import annotations

import functools
import os
import uuid
from pathlib import Path

import anyio

from projections import launches, naming
from projections.commands import (
    BeginLaunch,
    FailJob,
    RecordContainer,
    RecordNetwork,
    RecordProcessStarted,
    RecordWorkspace,
    RemoveStaging,
)
from projections.jobs import Job
from projections.lifecycle import STOPPING
from service.agents.identity import ProcessIdentity
from service.agents.launcher import LaunchError, launch
from service.agents.templates import AgentTemplate, TemplateError, render
from service.agents.watch import kill_group_now
from service.containers import ContainerStartError, DockerError, labels
from service.reconcile.loop import record
from service.runtime import Runtime
from service.sandbox.bwrap import owned_by
from service.sandbox.spec import AGENT_HOME, SandboxSpec
from service.staging_files import consume
from service.workspaces import create_workspace, render_prompt

_SESSIONS = uuid.UUID("6f1c2a8e-2d7b-4f35-9d41-7e0a3c5b9f10")
_BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "SHELL")


async def start_launches(rt: Runtime) -> None:
    for job in launches.due_jobs(rt.state):
        rt.tasks.start("launch", job.job_id, prepare_and_launch, rt, job.job_id)


async def prepare_and_launch(rt: Runtime, job_id: str) -> None:
    job = rt.state.jobs.get(job_id)
    if job is None or not launches.due(rt.state, job):
        return
    workspace = workspace_of(rt, job)
    clone = rt.path(naming.clone_path(job.spec.repo))
    await create_workspace(clone, workspace)
    staged = rt.state.staging.of_job(job_id)
    if staged is not None:
        await anyio.to_thread.run_sync(consume, rt.path(staged), workspace / "files")
        await record(rt, RemoveStaging(path=staged, reason="consumed"))
    await anyio.to_thread.run_sync(owned_by, workspace, rt.sandbox.uid, rt.sandbox.gid)
    if job.workspace is None and await record(rt, RecordWorkspace(job_id=job_id)) is None:
        return
    if job.spec.options.sidecars:
        problem = await start_sidecars(rt, job)
        if problem is not None:
            await record(rt, FailJob(job_id=job_id, reason=problem))
            return
    if await record(rt, BeginLaunch(job_id=job_id)) is None:
        return
    await spawn(rt, job_id)


async def spawn(rt: Runtime, job_id: str) -> None:
    """Start the agent of a job whose launch intent is durable, and record its identity."""
    job = rt.state.jobs.get(job_id)
    if job is None or not launches.in_flight(job):
        return
    assert job.run_dir is not None  # in flight: its launch intent is recorded
    if job.status in STOPPING:
        await record(rt, FailJob(job_id=job_id, reason="cancelled before its agent started"))
        return
    try:
        argv, env = command_line(rt, job)
        run_dir = rt.path(job.run_dir)
        identity = await anyio.to_thread.run_sync(
            functools.partial(
                launch,
                argv,
                cwd=workspace_of(rt, job),
                env=env,
                run_dir=run_dir,
                heartbeat_interval=rt.config.heartbeat_interval,
                sandbox=await anyio.to_thread.run_sync(sandbox_of, rt, job, run_dir),
            )
        )
    except (LaunchError, TemplateError, OSError) as err:
        await record(rt, FailJob(job_id=job_id, reason=f"the agent could not start: {err}"))
        return
    rt.launched.add(job_id)
    if not await record_started(rt, job_id, identity):
        kill_group_now(identity)


async def record_started(rt: Runtime, job_id: str, identity: ProcessIdentity) -> bool:
    """Record the agent's process, as launched here or found in its run directory after a
    crash; False when refused (the job moved on meanwhile)."""
    started = RecordProcessStarted(
        job_id=job_id,
        pid=identity.pid,
        process_start_time=identity.start_time,
        boot_id=identity.boot_id,
    )
    return await record(rt, started) is not None


def sandbox_of(rt: Runtime, job: Job, run_dir: Path) -> SandboxSpec | None:
    """The job's sandbox: its workspace, a home and /tmp of its own, and nothing of the data
    directory or of other jobs' workspaces (hidden even where the workspace root lies
    elsewhere). None when the server runs without a sandbox. Blocking: makes directories."""
    if rt.sandbox.mode == "none":
        return None
    home, tmp = rt.sandbox.job_dirs(run_dir)
    workspace = workspace_of(rt, job)
    network = rt.state.server.settings.agents[job.spec.agent].network
    hide = rt.hidden_from_agents(workspace)
    return rt.sandbox.spec(workspace=workspace, home=home, tmp=tmp, hide=hide, network=network)


def command_line(rt: Runtime, job: Job) -> tuple[list[str], dict[str, str]]:
    """The agent's argv (from its template, never through a shell) and exact environment:
    the job's variables, then the repository's, the template's and its `secret_env` (the
    admin's, which win; secret values come from the store and the config, never the log)."""
    spec = rt.state.server.settings.agents[job.spec.agent]
    template = AgentTemplate(
        command=spec.command, env=spec.env, resume_command=spec.resume_command or None
    )
    files = {name: f"files/{name}" for name in job.files}
    workspace = workspace_of(rt, job)
    argv = render(
        template,
        prompt=render_prompt(job.spec.prompt, files),
        model=job.spec.options.model,
        workspace=workspace,
        session=str(uuid.uuid5(_SESSIONS, job.job_id)),
    )
    env = {name: os.environ[name] for name in _BASE_ENV if name in os.environ}
    if rt.sandbox.mode != "none":
        env.update(HOME=AGENT_HOME, TMPDIR="/tmp")
        if rt.sandbox.user is not None:
            env.update(USER=rt.sandbox.user, LOGNAME=rt.sandbox.user)
    env.update(job.spec.options.env)
    env.update(rt.repo_secrets.env(rt.state.repos.get(job.spec.repo)))
    env.update(spec.env)  # the admin's settings win over the job's
    env.update(rt.config.secret_env(job.spec.agent))
    env["REWIND_JOB_ID"] = job.job_id
    return argv, env


async def start_sidecars(rt: Runtime, job: Job) -> str | None:
    """Create (idempotently), record and start the job's network and containers; the reason
    it cannot, if so. A container created just before a crash is found again by name."""
    docker = rt.docker
    if docker is None:
        return f"sidecars need a Docker API: {rt.docker_error}"
    tags = labels(job.job_id, rt.server_id)
    name = naming.network_name(job.job_id)
    what = f"network {name!r}"  # what failed, for the job's reason
    try:
        network = await anyio.to_thread.run_sync(docker.create_network, name, tags)
        await record(rt, RecordNetwork(job_id=job.job_id, network_id=network))
        for sidecar in job.spec.options.sidecars:
            what = f"sidecar {sidecar.name!r}"
            container = await anyio.to_thread.run_sync(
                functools.partial(
                    docker.create_container,
                    image=sidecar.image,
                    command=sidecar.command or None,
                    env=sidecar.env,
                    name=naming.container_name(job.job_id, sidecar.name),
                    labels=tags,
                    network=network,
                )
            )
            await record(
                rt,
                RecordContainer(job_id=job.job_id, container_id=container, sidecar=sidecar.name),
            )
            await anyio.to_thread.run_sync(docker.start_container, container)
    except ContainerStartError as err:
        return f"{what} could not start: {err}"
    except DockerError as err:
        return f"{what} could not be created: {err}"
    return None


def workspace_of(rt: Runtime, job: Job) -> Path:
    """Where the job's workspace is (or will be, before it is recorded)."""
    return rt.path(job.workspace or naming.workspace_path(rt.state.server.settings, job.job_id))
