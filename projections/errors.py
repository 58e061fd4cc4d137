"""Errors raised by the pure layer; the service maps them to messages, never to crashes."""


class ProjectionError(Exception):
    """Base for everything that can go wrong turning bytes into events or state."""


class UnknownEventError(ProjectionError):
    """An event this build cannot read: written by a newer rewind, or not rewind's at all."""


class StateVersionError(ProjectionError):
    """A snapshot of another state version: skip it and rebuild from the log."""
