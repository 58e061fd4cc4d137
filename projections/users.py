"""Users and their API tokens (hashes only: the log must never hold a usable secret)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from projections.envelope import Envelope
from projections.events import Role, TokenIssued, TokenRevoked, UserAdded, UserRemoved
from projections.handlers import Handlers

if TYPE_CHECKING:
    from projections.state import State


class User(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    user_id: str
    username: str
    role: Role
    password_hash: str | None
    added_seq: int


class Token(msgspec.Struct, frozen=True, array_like=True, gc=False):
    user_id: str
    label: str
    expires_at: float | None


class Users(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    by_id: dict[str, User] = msgspec.field(default_factory=dict)
    by_username: dict[str, str] = msgspec.field(default_factory=dict)
    tokens: dict[str, Token] = msgspec.field(default_factory=dict)
    """token hash -> token."""

    def authenticate(self, token_hash: str, now: float) -> User | None:
        """The user a token hash belongs to, if the token and its user are still valid."""
        token = self.tokens.get(token_hash)
        if token is None or (token.expires_at is not None and token.expires_at <= now):
            return None
        return self.by_id.get(token.user_id)

    def named(self, username: str) -> User | None:
        user_id = self.by_username.get(username)
        return None if user_id is None else self.by_id.get(user_id)

    def tokens_of(self, user_id: str) -> list[str]:
        return [h for h, token in self.tokens.items() if token.user_id == user_id]


def _user_added(state: State, seq: int, env: Envelope, ev: UserAdded) -> None:
    users = state.users
    if ev.user_id in users.by_id or ev.username in users.by_username:
        state.note(f"seq {seq}: user {ev.user_id!r} ({ev.username!r}) added twice")
        return
    users.by_id[ev.user_id] = User(
        user_id=ev.user_id,
        username=ev.username,
        role=ev.role,
        password_hash=ev.password_hash,
        added_seq=seq,
    )
    users.by_username[ev.username] = ev.user_id


def _user_removed(state: State, seq: int, env: Envelope, ev: UserRemoved) -> None:
    users = state.users
    user = users.by_id.pop(ev.user_id, None)
    if user is None:
        state.note(f"seq {seq}: unknown user {ev.user_id!r} removed")
        return
    del users.by_username[user.username]
    if users.tokens_of(ev.user_id):
        state.note(f"seq {seq}: user {ev.user_id!r} removed with live tokens")


def _token_issued(state: State, seq: int, env: Envelope, ev: TokenIssued) -> None:
    if ev.user_id not in state.users.by_id:
        state.note(f"seq {seq}: token issued to unknown user {ev.user_id!r}")
    state.users.tokens[ev.token_hash] = Token(ev.user_id, ev.label, ev.expires_at)


def _token_revoked(state: State, seq: int, env: Envelope, ev: TokenRevoked) -> None:
    if state.users.tokens.pop(ev.token_hash, None) is None:
        state.note(f"seq {seq}: unknown token {ev.token_hash[:12]!r} revoked")


HANDLERS: Handlers = {
    UserAdded: _user_added,
    UserRemoved: _user_removed,
    TokenIssued: _token_issued,
    TokenRevoked: _token_revoked,
}
