"""rewind's storage engine: bytes, records, segments, snapshots, fsync. Nothing about jobs.

Everything the layers above use is exported here; they import from `eventlog`, never from its
modules, so the engine can move code between its modules without touching them.
"""

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
from eventlog.fsutil import fsync_dir, make_dirs, write_all
from eventlog.latency import LatencyHistogram
from eventlog.lock import LOCK_NAME, DirLock
from eventlog.log import EventLog
from eventlog.recovery import Recovery
from eventlog.repair import accept_loss, truncate_after
from eventlog.segment import SUFFIX as SEGMENT_SUFFIX
from eventlog.segment import segment_seq
from eventlog.snapshot import Snapshot, SnapshotStore
from eventlog.verify import VerifyReport, verify_log
from eventlog.vfs import REAL, FileSystem

__all__ = [
    "LOCK_NAME",
    "MAX_PAYLOAD",
    "REAL",
    "SEGMENT_SUFFIX",
    "Checkpoint",
    "CheckpointMismatchError",
    "CorruptFileError",
    "CorruptLogError",
    "DirLock",
    "EventLog",
    "FileSystem",
    "LatencyHistogram",
    "LogClosedError",
    "LogError",
    "LogFailedError",
    "LogLockedError",
    "LostRecordsError",
    "Record",
    "RecordTooLargeError",
    "Recovery",
    "Snapshot",
    "SnapshotStore",
    "UnsupportedFormatError",
    "VerifyReport",
    "accept_loss",
    "atomic_write",
    "fsync_dir",
    "make_dirs",
    "read_checked",
    "segment_seq",
    "truncate_after",
    "verify_log",
    "write_all",
    "write_checked",
]
