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
    LostRecordsError,
    RecordTooLargeError,
    UnsupportedFormatError,
)
from eventlog.frame import MAX_PAYLOAD, Record
from eventlog.log import EventLog, Recovery
from eventlog.vfs import REAL, FileSystem

__all__ = [
    "MAX_PAYLOAD",
    "REAL",
    "Checkpoint",
    "CheckpointMismatchError",
    "CorruptFileError",
    "CorruptLogError",
    "EventLog",
    "FileSystem",
    "LogClosedError",
    "LogError",
    "LogFailedError",
    "LogLockedError",
    "LostRecordsError",
    "Record",
    "RecordTooLargeError",
    "Recovery",
    "UnsupportedFormatError",
    "atomic_write",
    "read_checked",
    "write_checked",
]
