"""What outputs for people and tools show of the log's sensitive facts: nothing usable.

The log holds password hashes (scrypt: a weak password falls to an offline search) and token
hashes, and logs written before repository secrets moved to the secrets store hold the
credentials of git URLs and the values of repository variables. `rewind log dump`, `rewind
state`, `rewind history`, `rewind crashes`, the job history and the admin API print events
and state through `redacted`, here once, so that no output forgets a field; `--show-secrets`
is the operator's explicit way around it.
"""

from __future__ import annotations

import re
from typing import Any, Final

HIDDEN: Final = "***"

_HASHES: Final = frozenset({"password_hash", "token_hash"})
"""Fields holding a hash, wherever they occur (events, the users projection)."""
_KEYED_BY_HASH: Final = "tokens"
"""The users projection's tokens, keyed by their hashes."""
_URLS: Final = frozenset({"git_url"})
_REPO_SETTINGS: Final = "index_command"
"""A field only a repository's settings have: their ``env`` holds values (in old logs)."""


def redact_url(text: str) -> str:
    """Every `scheme://user:secret@` credential in `text` replaced by `***`, and the user of
    `https://user@`, which is a token there (`https://<token>@github.com/...`)."""
    text = re.sub(r"(://[^/@\s:]*:)[^/@\s]*@", rf"\1{HIDDEN}@", text)
    return re.sub(r"(https://)[^/@\s:]+@", rf"\1{HIDDEN}@", text)


def redacted(plain: Any) -> Any:
    """A copy of plain data (as `plain.as_plain` makes it) with every hash, URL credential and
    repository variable value replaced by `***`. Hash-keyed maps get numbered keys instead,
    in their order, so they stay maps of distinct keys."""
    if isinstance(plain, list):
        return [redacted(item) for item in plain]
    if not isinstance(plain, dict):
        return plain
    out: dict[str, Any] = {}
    for key, value in plain.items():
        if key in _HASHES and isinstance(value, str):
            out[key] = HIDDEN
        elif key in _URLS and isinstance(value, str):
            out[key] = redact_url(value)
        elif key == _KEYED_BY_HASH and isinstance(value, dict):
            out[key] = {f"{HIDDEN}{n}": redacted(item) for n, item in enumerate(value.values())}
        elif key == "env" and _REPO_SETTINGS in plain and isinstance(value, dict):
            out[key] = dict.fromkeys(value, HIDDEN)
        else:
            out[key] = redacted(value)
    return out
