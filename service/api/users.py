"""/users and /auth/login."""

from __future__ import annotations

import functools
import secrets
from typing import Any, Final

import anyio
from litestar import Request, delete, post

from projections import commands as c
from service.api.deps import context, runtime_of, writable
from service.api.models import Login, NewUser, TokenOut, UserOut
from service.api.problems import ApiError
from service.auth import check_password, hash_password, new_token, token_hash

TOKEN_TTL: Final = 7 * 86400.0


@functools.cache
def _unknown_user() -> str:
    """Checked when the user is unknown, so a login costs one scrypt either way and its timing
    does not tell which usernames exist."""
    return hash_password(secrets.token_urlsafe(16))


MIN_PASSWORD: Final = 8


@post("/users", status_code=201)
async def create_user(request: Request[Any, Any, Any], data: NewUser) -> UserOut:
    rt, user = await context(request)
    if user.role != "admin":
        raise ApiError(403, "forbidden", "only an admin creates users")
    if data.role not in ("admin", "user"):
        raise ApiError(422, "invalid_role", "role is 'admin' or 'user'")
    if len(data.password) < MIN_PASSWORD:
        raise ApiError(422, "weak_password", f"a password has at least {MIN_PASSWORD} characters")
    hashed = await anyio.to_thread.run_sync(hash_password, data.password)
    user_id = "user-" + secrets.token_hex(6)
    await rt.engine.execute(
        c.AddUser(
            user_id=user_id,
            username=data.username,
            role="admin" if data.role == "admin" else "user",
            password_hash=hashed,
        ),
        actor=user.user_id,
    )
    return UserOut(id=user_id, username=data.username, role=data.role)


@delete("/users/{username:str}", status_code=200)
async def remove_user(request: Request[Any, Any, Any], username: str) -> UserOut:
    """Removing a user revokes every token of theirs in the same step."""
    rt, user = await context(request)
    if user.role != "admin":
        raise ApiError(403, "forbidden", "only an admin removes users")
    target = rt.state.users.named(username)
    if target is None:
        raise ApiError(404, "user_not_found", f"no user {username!r}")
    await rt.engine.execute(c.RemoveUser(user_id=target.user_id), actor=user.user_id)
    return UserOut(id=target.user_id, username=target.username, role=target.role)


@post("/auth/login", status_code=200, opt={"public": True})
async def login(request: Request[Any, Any, Any], data: Login) -> TokenOut:
    rt = runtime_of(request)
    writable(rt, request.method)
    user = rt.state.users.named(data.username)
    stored = user.password_hash if user and user.password_hash else _unknown_user()
    if not await anyio.to_thread.run_sync(check_password, data.password, stored) or user is None:
        raise ApiError(401, "bad_credentials", "unknown user or wrong password")
    token = new_token()
    events = await rt.engine.execute(
        c.IssueToken(
            token_hash=token_hash(token), user_id=user.user_id, label="login", ttl_seconds=TOKEN_TTL
        ),
        actor=user.user_id,
    )
    expires = getattr(events[0], "expires_at", None) if events else None
    return TokenOut(token=token, expires_at=expires)


ROUTES = [create_user, remove_user, login]
