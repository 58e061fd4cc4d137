"""Errors raised by the pure layer; the service maps them to messages, never to crashes."""

from __future__ import annotations

from typing import Literal

ErrorKind = Literal["not_found", "conflict", "invalid", "forbidden"]
"""What kind of refusal a domain error is; the service maps kinds to HTTP statuses (404, 409,
422, 403), so no caller needs a table of every code."""


class ProjectionError(Exception):
    """Base for everything that can go wrong turning bytes into events or state."""


class UnknownEventError(ProjectionError):
    """An event this build cannot read: written by a newer rewind, or not rewind's at all."""


class StateVersionError(ProjectionError):
    """A snapshot of another state version: skip it and rebuild from the log."""


class DomainError(Exception):
    """``decide`` refused a command. ``code`` is stable (clients and tests match on it);
    ``message`` is for people."""

    def __init__(self, kind: ErrorKind, code: str, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.code = code
        self.message = message


def not_found(code: str, message: str) -> DomainError:
    return DomainError("not_found", code, message)


def conflict(code: str, message: str) -> DomainError:
    return DomainError("conflict", code, message)


def invalid(code: str, message: str) -> DomainError:
    return DomainError("invalid", code, message)


def forbidden(code: str, message: str) -> DomainError:
    """The command is well-formed and the state allows it, but not from this actor."""
    return DomainError("forbidden", code, message)
