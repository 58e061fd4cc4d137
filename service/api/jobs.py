"""/jobs: create, upload files, start, watch, cancel, delete, browse results, history."""

from __future__ import annotations

import codecs
import errno
import functools
import hashlib
import secrets
from collections.abc import AsyncIterator
from typing import Any, Final, get_args

import anyio
import msgspec
from litestar import Request, Response, delete, get, post
from litestar.response import ServerSentEvent, ServerSentEventMessage, Stream

from projections import commands as c
from projections.events import Idempotency, Sidecar, tag_of
from projections.lifecycle import JobStatus
from projections.naming import callback_id
from projections.plain import fields_of
from projections.redact import redacted
from projections.users import User
from service.agents.watch import read_output
from service.api.deps import context
from service.api.models import (
    CallbackCreated,
    EntryOut,
    EventOut,
    FileOut,
    JobCreatedOut,
    JobOut,
    JobPage,
    NewJob,
    StartedOut,
)
from service.api.problems import ApiError
from service.api.views import job_out, visible_job
from service.paths import (
    NotRegularFileError,
    UnsafePathError,
    list_dir,
    open_inside,
    resolve_inside,
)
from service.runtime import Runtime
from service.staging_files import BadFilenameError, sanitize_filename, stage_file
from service.testhooks import pause_point
from service.webhooks import CallbackURLError, new_secret, secret_key, validate_url

OUTPUT_CHUNK = 1 << 20


@post("/jobs", status_code=201)
async def create_job(request: Request[Any, Any, Any], data: NewJob) -> JobCreatedOut:
    rt, user = await context(request)
    key = request.headers.get("idempotency-key")
    idempotency = None
    if key is not None:
        body = msgspec.json.encode(data)
        idempotency = Idempotency(
            key_hash=hashlib.sha256(f"{user.user_id}\0{key}".encode()).hexdigest(),
            body_hash=hashlib.sha256(body).hexdigest(),
        )
    if (replay := _replay(rt, idempotency)) is not None:
        return replay
    if data.options.sidecars and rt.docker is None:
        raise ApiError(503, "docker_unavailable", f"sidecars need a Docker API: {rt.docker_error}")
    job_id = "job-" + secrets.token_hex(8)
    callback_secrets = await _store_secrets(rt, job_id, data)
    command = c.CreateJob(
        job_id=job_id,
        owner=user.user_id,
        prompt=data.prompt,
        repo=data.repository,
        agent=data.agent,
        model=data.model,
        timeout_seconds=data.options.timeout_seconds,
        git_pull=data.options.git_pull,
        auto_cleanup=data.options.auto_cleanup,
        env=data.options.env,
        sidecars=[
            Sidecar(name=s.name, image=s.image, command=s.command, env=s.env)
            for s in data.options.sidecars
        ],
        callbacks=[c.CallbackRequest(url=cb.url) for cb in data.callbacks],
        idempotency=idempotency,
    )
    try:
        created = await rt.engine.execute(
            command, actor=user.user_id, request=request.headers.get("x-request-id")
        )
    except BaseException:
        for cid in callback_secrets:
            rt.secrets.remove(cid)
        raise
    replay = None if created else _replay(rt, idempotency)
    if replay is not None:  # a repeat of a create made meanwhile: decide made nothing
        for cid in callback_secrets:
            rt.secrets.remove(cid)
        return replay
    return _created(rt, job_id)


def _replay(rt: Runtime, idempotency: Idempotency | None) -> JobCreatedOut | None:
    """The answer to a request that repeats an earlier create (same key, same body): that
    job. A key used with another body is left to ``decide``, which refuses it."""
    earlier = rt.state.jobs.created_with(idempotency) if idempotency is not None else None
    if earlier is None or not earlier.same_body:
        return None
    return _created(rt, earlier.job_id)


async def _store_secrets(rt: Runtime, job_id: str, data: NewJob) -> list[str]:
    """Each callback's secret (given, or generated), stored before the job can exist."""
    stored: list[str] = []
    for index, callback in enumerate(data.callbacks):
        try:
            await anyio.to_thread.run_sync(
                functools.partial(
                    validate_url, callback.url, forbid_private=rt.config.callback_forbid_private
                )
            )
            secret = callback.secret or new_secret()
            secret_key(secret)
        except (CallbackURLError, ValueError) as err:
            for cid in stored:
                rt.secrets.remove(cid)
            raise ApiError(422, "invalid_callback", f"callbacks[{index}]: {err}") from None
        cid = callback_id(job_id, index)
        await anyio.to_thread.run_sync(rt.secrets.put, cid, secret)
        stored.append(cid)
    return stored


def _created(rt: Runtime, job_id: str) -> JobCreatedOut:
    job = rt.state.jobs.by_id[job_id]
    return JobCreatedOut(
        id=job_id,
        status=job.status,
        callbacks=[
            CallbackCreated(
                index=index, url=spec.url, secret=rt.secrets.get(spec.callback_id) or ""
            )
            for index, spec in enumerate(job.spec.callbacks)
        ],
    )


@post("/jobs/{job_id:str}/files", status_code=201)
async def upload_files(request: Request[Any, Any, Any], job_id: str) -> list[FileOut]:
    """Stage the parts named ``file``; a name staged before is replaced.

    Uploads to one job may arrive at once, several of one name among them. Each is written to
    a temp file of its own, but writing, renaming and recording happen under the job's lock:
    the uploads are taken one after the other, so the last upload of a name the log records
    is the one on disk (each is answered 201; none is refused for being concurrent). The start
    takes the same lock, so no upload lands in the staging directory after the job was queued
    and never appears in its log.
    """
    rt, user = await context(request)
    visible_job(rt.state, user, job_id)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(
            415, "not_multipart", "upload files as multipart/form-data parts named 'file'"
        )
    form = await request.form()
    parts = form.getall("file") if "file" in form else []
    uploads = [part for part in parts if hasattr(part, "filename")]
    if not uploads:
        raise ApiError(422, "no_files", "no multipart part named 'file' holds a file")
    contents = [(upload.filename, await upload.read()) for upload in uploads]
    for name, content in contents:
        _check_upload(name, content, rt.config.upload_max_bytes)
    async with rt.job_lock(job_id):
        await rt.engine.execute(c.StartStaging(job_id=job_id), actor=user.user_id)
        return [await _stage(rt, user, job_id, name, content) for name, content in contents]


async def _stage(rt: Runtime, user: User, job_id: str, name: str, content: bytes) -> FileOut:
    """Write one file under its name, then record it (the caller holds the job's lock)."""
    staged = await anyio.to_thread.run_sync(
        stage_file, rt.data_dir.staging, job_id, name, content, rt.config.upload_max_bytes
    )
    await pause_point("upload.written", rt.data_dir.root)
    await rt.engine.execute(
        c.StageFile(job_id=job_id, name=staged.name, size=staged.size, sha256=staged.sha256),
        actor=user.user_id,
    )
    return FileOut(name=staged.name, size=staged.size, sha256=staged.sha256)


def _check_upload(name: str, content: bytes, max_bytes: int) -> None:
    """Every part of an upload is judged before any is staged: one bad part refuses the
    whole upload and stages nothing."""
    try:
        clean = sanitize_filename(name)
    except BadFilenameError as err:
        raise ApiError(422, "bad_filename", str(err)) from None
    if len(content) > max_bytes:
        too_big = f"{clean} is {len(content)} bytes, over the limit of {max_bytes} bytes"
        raise ApiError(413, "too_large", too_big)


@post("/jobs/{job_id:str}/start", status_code=200)
async def start_job(request: Request[Any, Any, Any], job_id: str) -> StartedOut:
    """What the start did: queued at the back of the run queue (the job may well be past
    the queue by the time the answer arrives: GET /jobs/{id} tells where it is now)."""
    rt, user = await context(request)
    visible_job(rt.state, user, job_id)
    async with rt.job_lock(job_id):  # after the uploads in progress (see upload_files)
        behind = len(rt.state.jobs.queue)
        started = await rt.engine.execute(c.StartJob(job_id=job_id), actor=user.user_id)
    if started:
        return StartedOut(id=job_id, status="queued", queue_position=behind + 1)
    job = rt.state.jobs.by_id[job_id]
    return StartedOut(
        id=job_id, status=job.status, queue_position=rt.state.jobs.queue_position(job_id)
    )


@post("/jobs/{job_id:str}/cancel", status_code=200)
async def cancel_job(request: Request[Any, Any, Any], job_id: str) -> JobOut:
    rt, user = await context(request)
    visible_job(rt.state, user, job_id)
    await rt.engine.execute(c.CancelJob(job_id=job_id), actor=user.user_id)
    return job_out(rt.state, rt.state.jobs.by_id[job_id])


@delete("/jobs/{job_id:str}", status_code=202)
async def delete_job(request: Request[Any, Any, Any], job_id: str) -> dict[str, str]:
    """Deleting an unfinished job cancels it first; it disappears once its agent is gone."""
    rt, user = await context(request)
    visible_job(rt.state, user, job_id)
    await rt.engine.execute(c.DeleteJob(job_id=job_id), actor=user.user_id)
    job = rt.state.jobs.get(job_id)
    return {"id": job_id, "status": "deleted" if job is None or job.deleted else job.status}


@get("/jobs")
async def list_jobs(
    request: Request[Any, Any, Any],
    status: str | None = None,
    repository: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> JobPage:
    """Newest first; ``cursor`` is the ``nextCursor`` of the previous page."""
    rt, user = await context(request)
    if not 1 <= limit <= 500:
        raise ApiError(422, "invalid_limit", "limit must be between 1 and 500")
    if status is not None and status not in get_args(JobStatus):
        raise ApiError(
            422, "invalid_status", f"status {status!r} is not one of {get_args(JobStatus)}"
        )
    try:
        before = int(cursor) if cursor else None
    except ValueError:
        raise ApiError(422, "invalid_cursor", f"cursor {cursor!r} is not a cursor") from None
    found = []
    for job in reversed(rt.state.jobs.by_id.values()):
        if before is not None and job.created_seq >= before:
            continue
        if job.deleted or (user.role != "admin" and job.spec.owner != user.user_id):
            continue
        if (status and job.status != status) or (repository and job.spec.repo != repository):
            continue
        found.append(job)
        if len(found) > limit:
            break
    page = found[:limit]
    more = len(found) > limit
    return JobPage(
        jobs=[job_out(rt.state, job) for job in page],
        next_cursor=str(page[-1].created_seq) if more else None,
    )


@get("/jobs/{job_id:str}")
async def get_job(request: Request[Any, Any, Any], job_id: str) -> JobOut:
    rt, user = await context(request)
    return job_out(rt.state, visible_job(rt.state, user, job_id))


# no media type on the route: Litestar lets it override a stream's own, and the event stream
# must be text/event-stream; the plain answer names its own (application/octet-stream)
@get("/jobs/{job_id:str}/output")
async def job_output(
    request: Request[Any, Any, Any], job_id: str, offset: int = 0, follow: bool = False
) -> Response[bytes] | ServerSentEvent:
    """Bytes of the agent's output from ``offset``; ``follow=1`` streams server-sent events
    (``output`` with ``{offset, text}``, then ``end`` with the job's status)."""
    rt, user = await context(request)
    job = visible_job(rt.state, user, job_id)
    if offset < 0:
        raise ApiError(422, "invalid_offset", "offset cannot be negative")
    if follow:
        return ServerSentEvent(_follow(rt, user, job_id, offset))
    data = b""
    if job.run_dir is not None:
        data = await anyio.to_thread.run_sync(
            read_output, rt.path(job.run_dir), offset, OUTPUT_CHUNK
        )
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"X-Next-Offset": str(offset + len(data))},
    )


async def _follow(
    rt: Runtime, user: User, job_id: str, offset: int
) -> AsyncIterator[ServerSentEventMessage]:
    while True:
        found = rt.state.jobs.get(job_id)
        if found is None or found.deleted:  # deleted while followed: ended, not cut off
            yield ServerSentEventMessage(
                event="end",
                data=msgspec.json.encode({"status": "deleted", "exitCode": None}).decode(),
            )
            return
        job = visible_job(rt.state, user, job_id)
        ended = job.terminal
        if job.run_dir is not None:
            while data := await anyio.to_thread.run_sync(
                read_output, rt.path(job.run_dir), offset, OUTPUT_CHUNK
            ):
                last = ended and len(data) < OUTPUT_CHUNK
                text, used = _whole_characters(data, final=last)
                if not used:
                    break
                offset += used
                yield ServerSentEventMessage(
                    event="output",
                    data=msgspec.json.encode({"offset": offset, "text": text}).decode(),
                )
        if ended:
            yield ServerSentEventMessage(
                event="end",
                data=msgspec.json.encode(
                    {"status": job.status, "exitCode": job.exit_code}
                ).decode(),
            )
            return
        await rt.engine.wait_change(0.5)


def _whole_characters(data: bytes, *, final: bool) -> tuple[str, int]:
    """The text of the whole UTF-8 characters in ``data`` and the bytes they take. A character
    cut by the end of a read waits for the next read (decoded alone, each half would become
    U+FFFD); the end of an ended job's output (``final``) is decoded whole."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data, final=final)
    return text, len(data) - len(decoder.getstate()[0])


_UNREADABLE: Final = {
    errno.ENOENT: (404, "file_not_found", "no such file in the workspace"),
    errno.ENOTDIR: (404, "file_not_found", "no such file in the workspace"),
    errno.ELOOP: (404, "file_not_found", "no file in the workspace, only symlinks in a loop"),
    errno.ENAMETOOLONG: (422, "path_too_long", "a name is longer than the filesystem allows"),
}
"""The filesystem's refusals that say something about the path asked for, as problems: a loop
leads to no file, as a dangling symlink does (404); a name too long is the client's (422)."""


@get(["/jobs/{job_id:str}/files", "/jobs/{job_id:str}/files/{path:path}"])
async def job_files(
    request: Request[Any, Any, Any], job_id: str, path: str = ""
) -> list[EntryOut] | Stream:
    """Browse the job's workspace (a directory lists, a file downloads); confined to it."""
    rt, user = await context(request)
    job = visible_job(rt.state, user, job_id)
    if job.workspace is None:
        raise ApiError(404, "no_workspace", f"job {job_id!r} has no workspace (yet, or any more)")
    root = rt.path(job.workspace)
    relative = path.lstrip("/")
    try:
        target = resolve_inside(root, relative)
        if target.is_dir():
            entries = await anyio.to_thread.run_sync(list_dir, root, relative)
            return [EntryOut(name=e.name, type=e.type, size=e.size) for e in entries]
        handle = await anyio.to_thread.run_sync(open_inside, root, relative)
    except UnsafePathError as err:
        raise ApiError(422, "unsafe_path", str(err)) from None
    except NotRegularFileError as err:
        raise ApiError(422, "not_a_regular_file", str(err)) from None
    except OSError as err:
        if err.errno not in _UNREADABLE:
            raise
        status, code, why = _UNREADABLE[err.errno]
        raise ApiError(status, code, f"{why}: {relative!r}") from None

    async def chunks() -> AsyncIterator[bytes]:
        with handle:
            while chunk := await anyio.to_thread.run_sync(handle.read, OUTPUT_CHUNK):
                yield chunk

    return Stream(chunks(), media_type="application/octet-stream")


@get("/jobs/{job_id:str}/events")
async def job_events(request: Request[Any, Any, Any], job_id: str) -> list[EventOut]:
    """The job's audit history, read from the log at the seqs the state lists for it."""
    rt, user = await context(request)
    job = visible_job(rt.state, user, job_id)
    found = await anyio.to_thread.run_sync(rt.engine.history, list(job.seqs))
    out = []
    for seq, envelope in found:
        kind = tag_of(type(envelope.event))
        fields = redacted(fields_of(envelope.event))
        out.append(EventOut(seq=seq, ts=envelope.ts, actor=envelope.actor, type=kind, event=fields))
    return out


@get("/jobs/{job_id:str}/callbacks")
async def job_callbacks(request: Request[Any, Any, Any], job_id: str) -> list[Any]:
    rt, user = await context(request)
    return job_out(rt.state, visible_job(rt.state, user, job_id)).callbacks


@post("/jobs/{job_id:str}/callbacks/{index:int}/retry", status_code=202)
async def retry_callback(request: Request[Any, Any, Any], job_id: str, index: int) -> JobOut:
    rt, user = await context(request)
    visible_job(rt.state, user, job_id)
    await rt.engine.execute(c.RetryCallback(job_id=job_id, index=index), actor=user.user_id)
    return job_out(rt.state, rt.state.jobs.by_id[job_id])


ROUTES = [
    create_job,
    upload_files,
    start_job,
    cancel_job,
    delete_job,
    list_jobs,
    get_job,
    job_output,
    job_files,
    job_events,
    job_callbacks,
    retry_callback,
]
