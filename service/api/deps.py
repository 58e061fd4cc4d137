"""What every handler needs: the runtime, the calling user, and the settled state."""

from __future__ import annotations

import time
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from projections.users import User
from service.api.problems import ApiError
from service.auth import token_hash
from service.engine import EngineFailedError
from service.runtime import Runtime

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CALLER = "rewind.caller"
"""Where the middleware leaves the user it authenticated, for the handler."""


def runtime_of(request: ASGIConnection[Any, Any, Any, Any]) -> Runtime:
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise ApiError(503, "starting", "the server is starting", {"Retry-After": "1"})
    assert isinstance(runtime, Runtime)
    return runtime


async def settled(rt: Runtime) -> None:
    """Answer only from durable state; a failed log makes every answer a 503."""
    try:
        await rt.engine.settled()
    except EngineFailedError as err:
        raise ApiError(503, "log_failed", str(err)) from None


def writable(rt: Runtime, method: str) -> None:
    """Writes wait for recovery to finish, and stop for good when the log has failed."""
    if method in READ_METHODS:
        return
    if rt.engine.failure is not None:
        raise ApiError(
            503, "log_failed", f"the log failed ({rt.engine.failure}); restart the server"
        )
    if rt.state.server.recovering:
        raise ApiError(
            503, "recovering", "the server is recovering; retry shortly", {"Retry-After": "1"}
        )


def caller(rt: Runtime, request: ASGIConnection[Any, Any, Any, Any]) -> User:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401,
            "unauthenticated",
            "send 'Authorization: Bearer <token>'",
            {"WWW-Authenticate": "Bearer"},
        )
    user = rt.state.users.authenticate(token_hash(token.strip()), time.time())
    if user is None:
        raise ApiError(
            401, "invalid_token", "the token is unknown or expired", {"WWW-Authenticate": "Bearer"}
        )
    return user


def bearer_tokens(app: ASGIApp) -> ASGIApp:
    """Middleware of every route not marked ``opt={"public": True}``: the token is checked
    before the body is read, so a caller without one learns nothing of the body's shape and
    cannot make the server decode a large body. This is the only check: ``caller`` judges the
    token against the state as it is (it may run ahead of the disk), and leaves the user in
    the scope, where ``context`` takes it without asking again (it calls ``caller`` itself
    only for a route the middleware skipped). That is safe: a read is answered after
    ``settled()``, so after the token's own events are durable, and a write's events are
    durable only after everything before them in the log.

    A middleware rather than a guard: Litestar copies the route handler for every guard
    call, which cost more than the whole check."""

    async def check(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and not scope["route_handler"].opt.get("public"):
            connection: ASGIConnection[Any, Any, Any, Any] = ASGIConnection(scope)
            scope["state"][_CALLER] = caller(runtime_of(connection), connection)
        await app(scope, receive, send)

    return check


def require_admin(user: User) -> None:
    if user.role != "admin":
        raise ApiError(403, "forbidden", "this needs an admin token")


async def context(request: Request[Any, Any, Any]) -> tuple[Runtime, User]:
    """The runtime and the authenticated caller; writes refused while recovering or after a
    log failure. A read waits for the state to be settled; a write need not, because its
    answer waits for its own events, and the log makes them durable only after everything
    applied before them."""
    rt = runtime_of(request)
    writable(rt, request.method)
    if request.method in READ_METHODS:
        await settled(rt)
    user = request.scope["state"].get(_CALLER)
    return rt, user if isinstance(user, User) else caller(rt, request)
