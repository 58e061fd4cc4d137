"""Browsing and downloading a workspace without ever leaving it.

A client names files by a relative path; the agent that fills the workspace can create symlinks
anywhere. So a path is checked twice: textually (no NUL, not absolute, no `..` component), then
by where it really leads: `realpath` must stay under the root's `realpath`. Reading goes
further: the file is opened first and the kernel's name for the open descriptor
(`/proc/self/fd/N`) is checked, so a symlink swapped in between the check and the open cannot
redirect the read.

What is found there need not be a file or a directory: a socket, FIFO or device is refused
with NotRegularFileError (opening a socket fails with ENXIO, the others open but have nothing
to send). Every other failure of the filesystem is the caller's OSError to judge.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO, Literal

import msgspec

EntryType = Literal["file", "dir", "symlink", "other"]


class UnsafePathError(ValueError):
    """The requested path is not a path inside the root."""


class NotRegularFileError(ValueError):
    """The path names a socket, FIFO or device: it exists, but holds no bytes to download."""


class Entry(msgspec.Struct, frozen=True):
    name: str
    type: EntryType
    size: int
    """Bytes for a file; 0 for anything else."""


def resolve_inside(root: Path, relpath: str) -> Path:
    """The real path `relpath` names under `root`, or UnsafePathError. It need not exist."""
    if "\0" in relpath:
        raise UnsafePathError("the path contains a NUL byte")
    if relpath.startswith("/"):
        raise UnsafePathError(f"the path {relpath!r} is absolute; give it relative to the root")
    parts = [part for part in relpath.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafePathError(f"the path {relpath!r} goes up with '..'")
    base = os.path.realpath(root)
    real = os.path.realpath(os.path.join(base, *parts))
    if not _within(real, base):
        raise UnsafePathError(f"the path {relpath!r} leads outside through a symlink")
    return Path(real)


def _within(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


def _open_checked(root: Path, relpath: str, flags: int) -> int:
    """An fd on `relpath` whose kernel-reported location is inside `root`."""
    path = resolve_inside(root, relpath)
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as err:
        if err.errno == errno.ENXIO:
            not_a_file = f"{relpath!r} is a socket or device, not a regular file"
            raise NotRegularFileError(not_a_file) from None
        raise
    try:
        if not _within(os.readlink(f"/proc/self/fd/{fd}"), os.path.realpath(root)):
            raise UnsafePathError(f"the path {relpath!r} changed to lead outside while opening")
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_inside(root: Path, relpath: str) -> BinaryIO:
    """Open a regular file under `root` for reading (FileNotFoundError, IsADirectoryError...)."""
    fd = _open_checked(root, relpath, os.O_RDONLY)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(f"{relpath!r} is a directory")
        raise NotRegularFileError(f"{relpath!r} is not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def list_dir(root: Path, relpath: str = "") -> list[Entry]:
    """The entries of a directory under `root`, sorted by name; symlinks are listed, not followed.

    Names that are not valid UTF-8 are left out: they could not be asked for by name anyway.
    """
    fd = _open_checked(root, relpath, os.O_RDONLY | os.O_DIRECTORY)
    entries: list[Entry] = []
    try:
        with os.scandir(fd) as scan:
            for item in scan:
                try:
                    item.name.encode()
                    info = item.stat(follow_symlinks=False)
                except (UnicodeEncodeError, FileNotFoundError):
                    continue
                entries.append(Entry(item.name, _type_of(info.st_mode), _size_of(info)))
    finally:
        os.close(fd)
    return sorted(entries, key=lambda entry: entry.name)


def _type_of(mode: int) -> EntryType:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def _size_of(info: os.stat_result) -> int:
    return info.st_size if stat.S_ISREG(info.st_mode) else 0
