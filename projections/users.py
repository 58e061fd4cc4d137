"""Users and their API tokens (hashes only: the log must never hold a usable secret)."""

from __future__ import annotations

import msgspec

from projections.envelope import Envelope
from projections.events import TokenIssued, TokenRevoked, UserAdded, UserRemoved
from projections.handlers import Handlers


class Users(msgspec.Struct, array_like=True, gc=False, kw_only=True):
    users: dict[str, UserAdded] = msgspec.field(default_factory=dict)
    tokens: dict[str, TokenIssued] = msgspec.field(default_factory=dict)

    def authenticate(self, token_hash: str, now: float) -> UserAdded | None:
        """The user a token hash belongs to, if the token and its user are still valid."""
        token = self.tokens.get(token_hash)
        if token is None or (token.expires_at is not None and token.expires_at <= now):
            return None
        return self.users.get(token.user_id)

    def _user_added(self, seq: int, env: Envelope, ev: UserAdded) -> None:
        self.users[ev.user_id] = ev

    def _user_removed(self, seq: int, env: Envelope, ev: UserRemoved) -> None:
        self.users.pop(ev.user_id, None)

    def _token_issued(self, seq: int, env: Envelope, ev: TokenIssued) -> None:
        self.tokens[ev.token_hash] = ev

    def _token_revoked(self, seq: int, env: Envelope, ev: TokenRevoked) -> None:
        self.tokens.pop(ev.token_hash, None)


HANDLERS: Handlers = {
    UserAdded: Users._user_added,
    UserRemoved: Users._user_removed,
    TokenIssued: Users._token_issued,
    TokenRevoked: Users._token_revoked,
}
