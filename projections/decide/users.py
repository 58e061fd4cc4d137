"""Deciding users and tokens. Password and token hashing happen in the service (they need
randomness); only hashes reach the domain."""

from __future__ import annotations

import re
from typing import Final

from projections.commands import AddUser, IssueToken, RemoveUser, RevokeToken
from projections.errors import conflict, invalid, not_found
from projections.events import Event, TokenIssued, TokenRevoked, UserAdded, UserRemoved
from projections.state import State

USERNAME: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def add_user(state: State, command: AddUser, now: float) -> list[Event]:
    if not USERNAME.fullmatch(command.username):
        raise invalid(
            "invalid_username",
            "a username is 1-64 of a-z 0-9 . _ - and starts with a letter or digit",
        )
    if command.user_id in state.users.by_id:
        raise conflict("user_exists", f"user id {command.user_id!r} is taken")
    if command.username in state.users.by_username:
        raise conflict("username_taken", f"username {command.username!r} is taken")
    return [
        UserAdded(
            user_id=command.user_id,
            username=command.username,
            role=command.role,
            password_hash=command.password_hash,
        )
    ]


def remove_user(state: State, command: RemoveUser, now: float) -> list[Event]:
    user = state.users.by_id.get(command.user_id)
    if user is None:
        raise not_found("user_not_found", f"no user {command.user_id!r}")
    admins = [u for u in state.users.by_id.values() if u.role == "admin"]
    if user.role == "admin" and len(admins) == 1:
        raise conflict("last_admin", "the last admin cannot be removed")
    unfinished = [
        j for j in state.jobs.by_id.values() if j.spec.owner == user.user_id and not j.terminal
    ]
    if unfinished:
        raise conflict(
            "user_has_jobs", f"user {user.username!r} has {len(unfinished)} unfinished jobs"
        )
    events: list[Event] = [
        TokenRevoked(token_hash=token_hash, reason="user removed")
        for token_hash in state.users.tokens_of(command.user_id)
    ]
    events.append(UserRemoved(user_id=command.user_id))
    return events


def issue_token(state: State, command: IssueToken, now: float) -> list[Event]:
    if command.user_id not in state.users.by_id:
        raise not_found("user_not_found", f"no user {command.user_id!r}")
    if command.token_hash in state.users.tokens:
        raise conflict("token_exists", "this token is already issued")
    if command.ttl_seconds is not None and command.ttl_seconds <= 0:
        raise invalid("invalid_ttl", "a token's lifetime must be positive")
    expires = None if command.ttl_seconds is None else now + command.ttl_seconds
    return [
        TokenIssued(
            token_hash=command.token_hash,
            user_id=command.user_id,
            label=command.label,
            expires_at=expires,
        )
    ]


def revoke_token(state: State, command: RevokeToken, now: float) -> list[Event]:
    if command.token_hash not in state.users.tokens:
        raise not_found("token_not_found", "no such token")
    return [TokenRevoked(token_hash=command.token_hash, reason="revoked")]
