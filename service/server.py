"""Starting and stopping the server.

lock the data dir -> open the log (tail repair) -> newest valid snapshot + replay -> serve
(writes answer 503 while recovering) -> record the boot (``server.started``) -> recovery ->
``recovery.completed`` -> reconcilers. SIGTERM / SIGINT: stop accepting, stop the
reconcilers (agents keep running, detached), record ``server.stopping``, snapshot, close.
"""

from __future__ import annotations

import gc
import logging
import os
import stat
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import uvicorn
from litestar import Litestar, Router
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig

from eventlog import CheckpointMismatchError, EventLog, Recovery, atomic_write, make_dirs
from projections import DomainError, State
from projections import commands as c
from service import __version__
from service.api import jobs, ops, repos, users
from service.api.deps import bearer_tokens
from service.api.problems import (
    ApiError,
    on_api_error,
    on_domain_error,
    on_http_error,
    on_too_deep,
    on_unexpected,
    on_validation,
)
from service.auth import new_token, token_hash
from service.config import Config
from service.containers import DockerError, DockerGateway
from service.engine import Engine
from service.layout import DataDir
from service.reconcile import (
    callbacks,
    cleanup,
    clones,
    launching,
    preparation,
    retention,
    scheduler,
    sidecars,
    staging,
    watching,
)
from service.reconcile.loop import run_forever
from service.recovery import recover
from service.repo_secrets import RepoSecrets
from service.runtime import Runtime
from service.sandbox.host import SandboxHost, SandboxUnavailableError
from service.sandbox.host import prepare as prepare_sandbox
from service.secrets_store import SecretsStore
from service.snapshotter import Snapshotter
from service.state_store import LoadReport, load_state, snapshot_store
from service.tasks import Tasks
from service.webhooks import Timeouts, new_client

log = logging.getLogger("rewind")
SWEEP_EVERY = 60.0
GC_YOUNG_THRESHOLD = 10_000
"""Allocations between two young-generation collections (CPython's default is 700).

Every job the server creates stays in the in-memory state, so each request leaves a dozen
container objects alive; with the default the collector ran about every 60 creates, each run
walking young objects that point into a large heap: under `rewind bench api` that was about
40 us of CPU per create, some 40% of what rewind costs beyond the bare baseline. Collections
are rarer now, not skipped: the older generations keep their thresholds."""


@dataclass
class Opened:
    """What startup found on disk, before any event loop runs."""

    data_dir: DataDir
    log: EventLog
    state: State
    recovery: Recovery
    loaded: LoadReport


def open_data_dir(data_dir: DataDir) -> Opened:
    """Lock and open the log (repairing a torn tail) and load the state, from the newest
    snapshot whose checkpoint this log holds."""
    make_dirs(data_dir.root)
    _make_private(data_dir.root)
    newest = snapshot_store(data_dir).latest()
    checkpoint = newest.checkpoint if newest else None
    try:
        event_log = EventLog.open(data_dir.log, checkpoint=checkpoint)
    except CheckpointMismatchError:
        event_log = EventLog.open(data_dir.log)
    try:
        state, loaded = load_state(data_dir, log=event_log)
    except BaseException:
        event_log.close()
        raise
    return Opened(data_dir, event_log, state, event_log.recovery, loaded)


def _make_private(root: Path) -> None:
    """The data directory is the server user's alone: it holds the log (password and token
    hashes), the secrets and the agents' work. One made by hand, or before this rule, is
    tightened to 0700, which also shuts out whatever older, wider files it may hold."""
    if stat.S_IMODE(root.stat().st_mode) & 0o077:
        os.chmod(root, 0o700)


def build_app(
    opened: Opened,
    config: Config,
    sandbox: SandboxHost,
    base_url: str,
    stop: Callable[[str], None],
) -> Litestar:
    """The app; ``stop(reason)`` is called when the server's background work dies."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with (
            new_client(
                Timeouts(config.callback_connect_timeout, config.callback_total_timeout)
            ) as http,
            anyio.create_task_group() as group,
        ):
            rt = await _runtime(opened, config, base_url, http, Tasks(group), sandbox=sandbox)
            app.state.runtime = rt
            group.start_soon(_run_or_stop, rt, opened, stop)
            try:
                yield
            finally:
                group.cancel_scope.cancel()
        await _stop(rt, opened)

    return Litestar(
        route_handlers=[*jobs.ROUTES, *repos.ROUTES, *users.ROUTES, *ops.ROUTES],
        lifespan=[lifespan],
        exception_handlers={
            ApiError: on_api_error,
            DomainError: on_domain_error,
            ValidationException: on_validation,
            RecursionError: on_too_deep,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
        middleware=[bearer_tokens],
        openapi_config=OpenAPIConfig(
            title="rewind",
            version=__version__,
            openapi_router=Router(
                "/schema", route_handlers=[], include_in_schema=False, opt={"public": True}
            ),
        ),
        request_max_body_size=config.upload_max_bytes + 2**20,
        debug=False,
    )


async def _runtime(
    opened: Opened,
    config: Config,
    base_url: str,
    http: httpx.AsyncClient,
    tasks: Tasks,
    *,
    sandbox: SandboxHost,
) -> Runtime:
    engine = Engine(opened.log, opened.state)
    docker: DockerGateway | None = None
    docker_error: str | None = None
    try:
        docker = await anyio.to_thread.run_sync(DockerGateway.connect)
    except DockerError as err:
        docker_error = str(err)
    secrets = SecretsStore(opened.data_dir.secrets)
    rt = Runtime(
        data_dir=opened.data_dir,
        config=config,
        engine=engine,
        tasks=tasks,
        secrets=secrets,
        repo_secrets=RepoSecrets(secrets),
        http=http,
        boot_id=str(uuid.uuid4()),
        base_url=base_url,
        sandbox=sandbox,
        docker=docker,
        docker_error=docker_error,
    )
    await _boot(rt, config)
    return rt


async def _boot(rt: Runtime, config: Config) -> None:
    """The server's identity and settings, its admin, then ``server.started``."""
    engine = rt.engine
    if rt.state.server.server_id is None:
        await engine.execute(c.InitializeServer(server_id="srv-" + uuid.uuid4().hex[:12]))
    await engine.execute(c.Configure(settings=config.settings()))
    await _ensure_admin(rt)
    await engine.execute(c.StartServer(boot_id=rt.boot_id, pid=os.getpid(), version=__version__))


async def _ensure_admin(rt: Runtime) -> None:
    """On an empty data dir: an admin with a token, printed once and kept in
    ``DATA/admin-token`` (0600). ``REWIND_ADMIN_TOKEN`` chooses the token instead."""
    wanted = os.environ.get("REWIND_ADMIN_TOKEN")
    state = rt.state
    if state.users.by_id and (wanted is None or token_hash(wanted) in state.users.tokens):
        return
    admin = next((u for u in state.users.by_id.values() if u.role == "admin"), None)
    if admin is None:
        await rt.engine.execute(
            c.AddUser(user_id="admin", username="admin", role="admin", password_hash=None)
        )
        admin_id = "admin"
    else:
        admin_id = admin.user_id
    token = wanted or new_token()
    await rt.engine.execute(
        c.IssueToken(
            token_hash=token_hash(token), user_id=admin_id, label="admin", ttl_seconds=None
        )
    )
    path = rt.data_dir.admin_token
    atomic_write(path, (token + "\n").encode())
    print(f"rewind: admin token {token} (kept in {path})", flush=True)


async def _run(rt: Runtime, opened: Opened) -> None:
    """Recovery first, then the reconcilers of normal operation (the same code)."""
    await recover(rt, opened.recovery, opened.loaded)
    snapshotter = Snapshotter(
        rt.data_dir, every=rt.config.snapshot_every, last_seq=opened.loaded.snapshot_seq or 0
    )

    async def snapshots(rt: Runtime) -> None:
        checkpoint = rt.engine.log.checkpoint
        if (
            snapshotter.due(rt.state)
            and checkpoint is not None
            and checkpoint.seq == rt.state.last_seq
        ):
            await snapshotter.take(rt.state, checkpoint)

    async with anyio.create_task_group() as group:
        for name, one_pass, every in (
            ("scheduler", scheduler.dispatch, None),
            ("clones", clones.start_clones, None),
            ("preparation", preparation.start_preparations, None),
            ("launching", launching.start_launches, None),
            ("watching", watching.start_watchers, None),
            ("callbacks", callbacks.start_deliveries, None),
            ("cleanup", cleanup.start_cleanups, None),
            ("sidecars", sidecars.start_removals, None),
            ("staging", staging.start_staging_sweeps, None),
            ("snapshots", snapshots, None),
            ("retention", retention.purge_expired, SWEEP_EVERY),
            ("orphans", _sweeps, SWEEP_EVERY),
        ):
            group.start_soon(run_forever, rt, name, one_pass, every)


async def _run_or_stop(rt: Runtime, opened: Opened, stop: Callable[[str], None]) -> None:
    """A server whose recovery or reconcilers died must not linger unready: it stops, and
    exits non-zero so that a supervisor restarts it."""
    try:
        await _run(rt, opened)
    except Exception as err:
        log.exception("the server's background work failed; stopping")
        stop(f"{type(err).__name__}: {err}")


async def _sweeps(rt: Runtime) -> None:
    await staging.sweep_orphans(rt)
    await sidecars.sweep_orphans(rt)


async def _stop(rt: Runtime, opened: Opened) -> None:
    """A clean stop: recorded, snapshotted, closed. Agents keep running; the next start
    re-attaches them."""
    try:
        if rt.engine.failure is None:
            await rt.engine.execute(c.StopServer())
            await rt.engine.settled()
            checkpoint = rt.engine.log.checkpoint
            if checkpoint is not None and checkpoint.seq == rt.state.last_seq:
                await Snapshotter(rt.data_dir).take(rt.state, checkpoint)
    finally:
        opened.log.close()
        if rt.docker is not None:
            rt.docker.close()


def serve(data_dir: Path, host: str, port: int, config: Config) -> None:
    """Run the server until SIGTERM / SIGINT.

    The umask comes first: every file the server, git or an agent's wrapper creates in the data
    directory is then the server user's alone from its first byte, whatever creates it."""
    os.umask(0o077)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per webhook is noise
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    try:
        sandbox = prepare_sandbox(
            config.settings().sandbox, config.agent_user, config.agent_network_allow
        )
    except SandboxUnavailableError as err:
        print(f"rewind: error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
    opened = open_data_dir(DataDir.at(data_dir.absolute()))
    base_url = f"http://{host}:{port}"
    fatal: list[str] = []

    def stop(reason: str) -> None:
        fatal.append(reason)
        server.should_exit = True

    app = build_app(opened, config, sandbox, base_url, stop)
    print(f"rewind: serving {data_dir} on {base_url} (API schema at {base_url}/schema)", flush=True)
    if sandbox.mode == "none":
        print(f"rewind: WARNING: no agent sandbox: {sandbox.describe()}", flush=True)
    else:
        print(f"rewind: agent sandbox: {sandbox.describe()}", flush=True)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=host, port=port, lifespan="on", log_level="warning", access_log=False
        )
    )
    server.run()
    if fatal:
        print(f"rewind: error: the server stopped: {fatal[0]}", file=sys.stderr, flush=True)
        sys.exit(3)
    if not server.started:
        sys.exit(2)
