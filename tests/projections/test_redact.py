"""What outputs show of the log's sensitive facts: hashes, URL credentials and repository
variable values become `***` wherever they sit in events or state; nothing else changes."""

from __future__ import annotations

import msgspec

from projections import Event, State, evolve, make
from projections.events import RepoRegistered, RepoSettings, TokenIssued, UserAdded
from projections.plain import as_plain, fields_of
from projections.redact import redact_url, redacted

SCRYPT = "scrypt$n=16384,r=8,p=1$c2FsdA==$ZGlnZXN0"
TOKEN = "ab" * 32
OTHER = "cd" * 32


def test_events_lose_their_hashes_and_secrets_and_keep_the_rest() -> None:
    user = UserAdded(user_id="u", username="uma", role="user", password_hash=SCRYPT)
    assert redacted(fields_of(user)) == {
        "user_id": "u",
        "username": "uma",
        "role": "user",
        "password_hash": "***",
    }
    token = TokenIssued(token_hash=TOKEN, user_id="u", label="cli", expires_at=None)
    assert redacted(fields_of(token))["token_hash"] == "***"
    old = RepoRegistered(  # as logs written before secrets left them hold it
        repo="r",
        git_url="https://bob:pw@host/x.git",
        branch="main",
        description="",
        settings=RepoSettings(env={"API_KEY": "sk-1"}),
    )
    shown = redacted(as_plain(old))
    assert shown["git_url"] == "https://bob:***@host/x.git"
    assert shown["settings"]["env"] == {"API_KEY": "***"}
    assert shown["settings"]["index_command"] == []
    assert shown["repo"] == "r" and shown["type"] == "repo.registered"


def test_state_keeps_distinct_token_entries_without_their_hashes() -> None:
    state = State()
    events: list[Event] = [
        UserAdded(user_id="u", username="uma", role="user", password_hash=SCRYPT),
        TokenIssued(token_hash=TOKEN, user_id="u", label="cli", expires_at=None),
        TokenIssued(token_hash=OTHER, user_id="u", label="ci", expires_at=None),
    ]
    for seq, event in enumerate(events, start=1):
        evolve(state, seq, make(event, ts=0.0, actor="test"))
    shown = msgspec.json.encode(redacted(as_plain(state))).decode()
    for secret in (SCRYPT, TOKEN, OTHER):
        assert secret not in shown
    tokens = redacted(as_plain(state))["users"]["tokens"]
    assert [t["label"] for t in tokens.values()] == ["cli", "ci"] and set(tokens) == {
        "***0",
        "***1",
    }


def test_url_credentials_are_hidden_in_any_text() -> None:
    assert redact_url("fatal: https://t0k@h/x and ssh://me:pw@h/y") == (
        "fatal: https://***@h/x and ssh://me:***@h/y"
    )
