"""The one way rewind writes a file outside the log: temp file, fsync, rename, fsync dir.

A reader sees the old bytes or the new bytes, never a mix. Files that must also detect bit rot
are sealed with a small checksummed header (`write_checked` / `read_checked`).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import google_crc32c

from eventlog import fsutil
from eventlog.errors import CorruptFileError
from eventlog.vfs import FILE_MODE, REAL, FileSystem

TEMP_PREFIX = ".rewind-tmp-"
"""Every temp file the engine makes starts with this; a log directory's are removed at open,
and nothing else ever is."""

_SEAL = struct.Struct("<4sHHQI")  # magic, version, reserved, length, crc32c(data)
_SEAL_MAGIC = b"RWCK"
_SEAL_VERSION = 1


def atomic_write(
    path: Path | str, data: bytes, fs: FileSystem = REAL, *, mode: int = FILE_MODE
) -> None:
    """Replace `path` with `data` so that a crash at any instant leaves old or new, whole.

    `mode` (the owner's alone by default) applies from the temp file's creation: a secret is
    never readable by others, not even in between."""
    path = Path(path)
    tmp = path.with_name(f"{TEMP_PREFIX}{path.name}.{os.getpid()}")
    fd = fs.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            fsutil.write_all(fs, fd, data)
            fs.fsync(fd)
        finally:
            fs.close(fd)
        fs.rename(tmp, path)
    except BaseException:
        if fs.exists(tmp):
            fs.unlink(tmp)
        raise
    fs.fsync_dir(path.parent)


def seal(data: bytes) -> bytes:
    """Prefix `data` with magic, length and CRC so truncation and bit flips are detectable."""
    crc = google_crc32c.value(data)
    return _SEAL.pack(_SEAL_MAGIC, _SEAL_VERSION, 0, len(data), crc) + data


def unseal(blob: bytes, origin: Path) -> bytes:
    """Inverse of `seal`; raises CorruptFileError naming `origin` on any mismatch."""
    if len(blob) < _SEAL.size:
        raise CorruptFileError(origin, f"{len(blob)} bytes is shorter than the header")
    magic, version, reserved, length, crc = _SEAL.unpack_from(blob)
    if magic != _SEAL_MAGIC:
        raise CorruptFileError(origin, "bad magic, not a checksummed rewind file")
    if version != _SEAL_VERSION:
        raise CorruptFileError(origin, f"unsupported checksum format version {version}")
    if reserved != 0:  # written as 0 and outside the CRC: a set bit is damage
        raise CorruptFileError(origin, f"reserved header field is {reserved:#x}, not 0")
    data = blob[_SEAL.size :]
    if len(data) != length:
        raise CorruptFileError(origin, f"length {len(data)} but header says {length}")
    if google_crc32c.value(data) != crc:
        raise CorruptFileError(origin, "checksum mismatch")
    return data


def write_checked(
    path: Path | str, data: bytes, fs: FileSystem = REAL, *, mode: int = FILE_MODE
) -> None:
    """atomic_write of a sealed copy of `data`."""
    atomic_write(path, seal(data), fs, mode=mode)


def read_checked(path: Path | str, fs: FileSystem = REAL) -> bytes:
    """Read a file written by `write_checked`, verifying its checksum."""
    path = Path(path)
    return unseal(fs.read_file(path), path)
