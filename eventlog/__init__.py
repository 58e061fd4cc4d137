"""rewind's storage engine: bytes, records, segments, snapshots, fsync. Nothing about jobs."""

from eventlog.atomic import atomic_write, read_checked, write_checked
from eventlog.checkpoint import Checkpoint
from eventlog.errors import (
    CheckpointMismatchError,
    CorruptFileError,
    CorruptLogError,
    LogClosedError,
    LogError,
    LogFailedError,
    LogLockedError,
    RecordTooLargeError,
)
from eventlog.frame import MAX_PAYLOAD, Record
from eventlog.log import EventLog, Recovery

__all__ = [
    "MAX_PAYLOAD",
    "Checkpoint",
    "CheckpointMismatchError",
    "CorruptFileError",
    "CorruptLogError",
    "EventLog",
    "LogClosedError",
    "LogError",
    "LogFailedError",
    "LogLockedError",
    "Record",
    "RecordTooLargeError",
    "Recovery",
    "atomic_write",
    "read_checked",
    "write_checked",
]
