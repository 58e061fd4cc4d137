"""The baseline of `rewind bench api`: the least a durable create can cost on this stack.

A bare Litestar app under uvicorn, built and served with the same settings as `rewind serve`
(``service.server``: lifespan on, warning-level logging, no access log, uvicorn's automatic
choice of event loop and HTTP parser, one process), whose ``POST /jobs`` decodes the same body
into the same msgspec model as rewind's, appends one record to an `EventLog` (the project's own
log, group commit) on the same disk, and answers 201 only once that record is durable. What
rewind does beyond this (authentication, the domain's decide and evolve, encoding events,
settling) is what the ratio prices.

``GET /ping`` answers a constant straight from ASGI, in front of Litestar: the trivial endpoint
on which the load generator shows how much faster than the measured servers it can go. It is
served by the same uvicorn (so parsed by the same httptools on the same uvloop) but skips the
framework, so it is as cheap for the server as an answer can be and what it measures is mostly
the generator.

Run as ``python -m tools.bench_api_baseline --log DIR --port PORT``.
"""

from __future__ import annotations

import argparse
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import msgspec
import uvicorn
from litestar import Litestar, post
from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
)

from eventlog import EventLog
from service.api.models import JobCreatedOut, NewJob


class Created(msgspec.Struct, frozen=True):
    """The one record a baseline create appends."""

    id: str
    job: NewJob


def build_app(log_dir: Path) -> Litestar:
    logs: list[EventLog] = []

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        logs.append(EventLog.open(log_dir))
        try:
            yield
        finally:
            logs.pop().close()

    @post("/jobs", status_code=201)
    async def create_job(data: NewJob) -> JobCreatedOut:
        job_id = "job-" + secrets.token_hex(8)
        await logs[0].append(msgspec.json.encode(Created(id=job_id, job=data)))
        return JobCreatedOut(id=job_id, status="created", callbacks=[])

    return Litestar(route_handlers=[create_job], lifespan=[lifespan], debug=False)


PONG_HEAD: Final[HTTPResponseStartEvent] = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"4")],
}
PONG_BODY: Final[HTTPResponseBodyEvent] = {
    "type": "http.response.body",
    "body": b"pong",
    "more_body": False,
}


def with_ping(app: ASGIApp) -> ASGIApp:
    """`app` with ``GET /ping`` answered before it."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and scope["path"] == "/ping":
            await send(PONG_HEAD)
            await send(PONG_BODY)
            return
        await app(scope, receive, send)

    return serve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, required=True, help="EventLog directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = uvicorn.Server(
        uvicorn.Config(
            with_ping(build_app(args.log)),
            host=args.host,
            port=args.port,
            lifespan="on",
            log_level="warning",
            access_log=False,
        )
    )
    server.run()


if __name__ == "__main__":
    main()
