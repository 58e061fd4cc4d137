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
    """A write or fsync failed; the kernel may have dropped dirty pages, so nothing is trusted.

    For the appends it fails, the outcome is unknown: their bytes may have reached the disk
    (whole, as one complete batch) or not. The next open decides, after making what it finds
    durable; a caller that must know reads the log back after a restart.
    """


class UnsupportedFormatError(LogError):
    """A segment written in a format this build does not read (an older or newer rewind)."""

    def __init__(self, file: Path, version: int, supported: int) -> None:
        self.file = file
        self.version = version
        super().__init__(
            f"{file} is in segment format {version}; this build reads format {supported} "
            f"only ({'an older' if version < supported else 'a newer'} rewind wrote it)"
        )


class LostRecordsError(LogError):
    """A durable snapshot covers records the log no longer has: acknowledged records are gone.

    A snapshot is written only after the records it covers are durable, so this is evidence of
    loss (a deleted or truncated segment), never something to skip silently. An operator who
    accepts the loss says so with `rewind log repair --accept-loss`.
    """

    def __init__(self, snapshot: Path, snapshot_seq: int, log_end: int) -> None:
        self.snapshot = snapshot
        self.snapshot_seq = snapshot_seq
        self.log_end = log_end
        super().__init__(
            f"snapshot {snapshot} covers seq {snapshot_seq} but the log ends at seq {log_end}: "
            f"acknowledged records {log_end + 1}..{snapshot_seq} are missing; refusing to go "
            "on (to accept the loss: `rewind log repair --accept-loss`)"
        )


class RecordTooLargeError(LogError, ValueError):
    """A payload over the record limit; readers never trust lengths beyond it either."""


class LogClosedError(LogError):
    """Append after close."""


class CorruptFileError(LogError):
    """A checksummed file (snapshot, report, session copy) failed verification."""

    def __init__(self, path: Path, detail: str) -> None:
        self.path = path
        super().__init__(f"corrupt file {path}: {detail}")
