"""The log's failure modes, each a distinct type so callers can react precisely.

A torn tail is *not* an error: it is repaired at open and reported in `EventLog.recovery`.
Everything here means "a human, or a restart, has to look at this".
"""

from __future__ import annotations

from pathlib import Path


class LogError(Exception):
    """Base of every error raised by the log engine."""


class CorruptLogError(LogError):
    """Damage that cannot be a torn write: refusing to guess protects acknowledged records."""

    def __init__(self, file: Path, offset: int, seq: int, kind: str, detail: str = "") -> None:
        self.file = file
        self.offset = offset
        self.seq = seq
        self.kind = kind
        self.detail = detail
        message = f"corrupt log: {kind} in {file} at offset {offset} (expected seq {seq})"
        if detail:
            message += f": {detail}"
        message += "; inspect with `rewind log verify`, cut with `rewind log repair`"
        super().__init__(message)


class LogLockedError(LogError):
    """Another live process owns the log; two writers would interleave frames."""

    def __init__(self, path: Path, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        owner = f"process {pid}" if pid else "another process"
        super().__init__(f"log {path} is locked by {owner}")


class CheckpointMismatchError(LogError):
    """A checkpoint (from a snapshot) names a record this log does not hold at that place.

    The snapshot belongs to another history (a cut log, a copied directory): it must not be used
    with this log, but the log itself may be fine.
    """


class LogFailedError(LogError):
    """A write or fsync failed; the kernel may have dropped dirty pages, so nothing is trusted."""


class RecordTooLargeError(LogError, ValueError):
    """A payload over the record limit; readers never trust lengths beyond it either."""


class LogClosedError(LogError):
    """Append after close."""


class CorruptFileError(LogError):
    """A checksummed file (snapshot, report, session copy) failed verification."""

    def __init__(self, path: Path, detail: str) -> None:
        self.path = path
        super().__init__(f"corrupt file {path}: {detail}")
