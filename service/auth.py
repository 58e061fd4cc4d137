"""Passwords and API tokens. Only hashes ever reach the log.

Passwords: scrypt (hashlib, OpenSSL's implementation) with its parameters and salt inside the
stored string, so the cost can be raised later without breaking old hashes. Tokens: 256 random
bits, stored as SHA-256 (a token is not guessable, so a slow hash would add nothing but latency
to every request).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
TOKEN_PREFIX: Final = "rw_"


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt$n={SCRYPT_N},r={SCRYPT_R},p={SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str | None) -> bool:
    """Constant-time comparison; a malformed or absent hash never matches."""
    if stored is None:
        return False
    try:
        scheme, params, salt, digest = stored.split("$")
        values = dict(part.split("=") for part in params.split(","))
        n, r, p = int(values["n"]), int(values["r"]), int(values["p"])
        expected = base64.b64decode(digest)
        actual = _scrypt(password, base64.b64decode(salt), n, r, p)
    except (ValueError, KeyError):
        return False
    return scheme == "scrypt" and hmac.compare_digest(actual, expected)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 2**20, dklen=32)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
