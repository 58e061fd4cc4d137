"""Directory trees that are built or removed under a name of their own, so a crash is harmless.

A tree (a clone, a workspace copy) is built at a temp sibling `.<name>.<purpose>` and renamed to
`<name>` only when whole; a removal first renames `<name>` to `.<name>.deleting` and then
deletes that. So `<name>` is always either whole or absent, and everything a crash leaves
behind is a sibling whose name says whose it was and what it was for. `remove_tree(<name>)`
removes all of them: the tree, an unfinished removal, an unfinished build.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eventlog import fsync_dir
from service.run_command import reap_orphans

CLONING = "clone"
COPYING = "copying"
DELETING = "deleting"
_PURPOSES = (CLONING, COPYING, DELETING)
_ATOMIC_TEMP = re.compile(r"\..+\.\d+\.tmp", re.DOTALL)
_libc = ctypes.CDLL(None, use_errno=True)


class TreeRemovalError(Exception):
    """Some entries could not be removed (busy mount point, immutable file, not our file)."""

    def __init__(self, path: Path, errors: list[tuple[str, OSError]]) -> None:
        self.path = path
        self.errors = errors
        where, first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"cannot remove {path}: {first.strerror}: {where}{more}")


def temp_sibling(path: Path, purpose: str) -> Path:
    """The name under which `path` is built (`purpose` clone/copying) or removed (deleting)."""
    if purpose not in _PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    return path.with_name(f".{path.name}.{purpose}")


def is_atomic_write_temp(name: str) -> bool:
    """Whether `name` has the shape of `atomic_write`'s temp file (`.<name>.<pid>.tmp`), which
    only a crash in the middle of a write leaves behind."""
    return _ATOMIC_TEMP.fullmatch(name) is not None


def stray_temps(parent: Path) -> list[tuple[str, Path]]:
    """(owner name, path) of each temp sibling in `parent`: what crashes left behind."""
    found: list[tuple[str, Path]] = []
    if not parent.is_dir():
        return found
    for entry in sorted(parent.iterdir()):
        name = entry.name
        for purpose in _PURPOSES:
            suffix = f".{purpose}"
            if name.startswith(".") and name.endswith(suffix) and len(name) > len(suffix) + 1:
                found.append((name[1 : -len(suffix)], entry))
    return found


def remove_tree(path: Path) -> None:
    """Remove `path` and its temp siblings; a missing path is success; resumable after a crash.

    Entries without write or search permission are made accessible first (read-only checkouts,
    `chmod -w` trees that agents leave). A tree with a filesystem mounted inside is refused
    before anything is deleted. What cannot be removed raises TreeRemovalError (the cleanup
    records it and retries); a later call picks up where this one stopped.
    """
    path = path.absolute()
    builds = (temp_sibling(path, CLONING), temp_sibling(path, COPYING))
    trash = temp_sibling(path, DELETING)
    _refuse_mount_points(path, (path, trash, *builds))
    try:
        for build in builds:
            discard_build(build)
        if os.path.lexists(trash):
            _delete(trash, path)
        if not os.path.lexists(path):
            return
        if path.is_symlink() or not path.is_dir():
            path.unlink()
        else:
            os.rename(path, trash)
            fsync_dir(path.parent)
            _delete(trash, path)
        fsync_dir(path.parent)
    except OSError as error:  # rename of a mount point (EBUSY), unlink in a read-only dir...
        raise TreeRemovalError(path, [(str(error.filename or path), error)]) from error


def _refuse_mount_points(path: Path, trees: tuple[Path, ...]) -> None:
    """rmtree would descend into a filesystem mounted inside the tree (a bind mount, a volume)
    and empty it; refuse before deleting anything, as `rm --one-file-system` would."""
    prefixes = tuple(f"{os.path.realpath(tree.parent)}/{tree.name}/" for tree in trees)
    try:
        with open("/proc/self/mountinfo", "rb") as info:
            lines = info.read().splitlines()
    except FileNotFoundError:
        return
    for line in lines:
        point = _unescape_mount_path(line.split()[4])
        if point.startswith(prefixes):
            error = OSError(errno.EBUSY, "a filesystem is mounted inside; unmount it first")
            raise TreeRemovalError(path, [(point, error)])


def _unescape_mount_path(raw: bytes) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    return os.fsdecode(re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), raw))


def discard_build(temp: Path) -> None:
    """Remove an unfinished build at `temp`, first killing any process still building it."""
    if os.path.lexists(temp):
        reap_orphans(temp)
        _delete(temp, temp)


def _delete(tree: Path, reported_as: Path) -> None:
    if tree.is_symlink() or not tree.is_dir():
        tree.unlink(missing_ok=True)
    else:
        errors = _rmtree(tree)
        if any(isinstance(error, PermissionError) for _, error in errors):
            _grant_access(tree)
            errors = _rmtree(tree)
        if errors:
            raise TreeRemovalError(reported_as, errors)
    fsync_dir(tree.parent)


def _rmtree(tree: Path) -> list[tuple[str, OSError]]:
    """Remove what can be removed; return (path, error) of what could not, causes only (a
    directory left non-empty by a failure inside it is not a failure of its own)."""
    errors: list[tuple[str, OSError]] = []

    def record(_func: Callable[..., Any], path: str, error: Any) -> None:
        exc = error[1] if isinstance(error, tuple) else error
        if not isinstance(exc, FileNotFoundError):
            errors.append((path, exc))

    if sys.version_info >= (3, 12):
        shutil.rmtree(tree, onexc=record)
    else:
        shutil.rmtree(tree, onerror=record)
    causes = [(path, exc) for path, exc in errors if exc.errno != errno.ENOTEMPTY]
    return causes or errors


def _grant_access(tree: Path) -> None:
    """u+rwx on every directory, top-down, so rmtree can list and unlink everywhere."""
    _add_owner_rwx(tree)
    for directory, subdirs, _files in os.walk(tree):
        for name in subdirs:
            sub = os.path.join(directory, name)
            if not os.path.islink(sub):
                _add_owner_rwx(Path(sub))


def _add_owner_rwx(directory: Path) -> None:
    try:
        mode = stat.S_IMODE(os.lstat(directory).st_mode)
        if mode & stat.S_IRWXU != stat.S_IRWXU:
            os.chmod(directory, mode | stat.S_IRWXU)
    except OSError:
        return  # not ours to change: the second rmtree reports the entries it blocks


def sync_filesystem(path: Path) -> None:
    """Flush every dirty page and inode of the filesystem holding `path` (syncfs(2)).

    Used before a tree built by another process (git, cp) is renamed into place: fsyncing each
    of its files one by one would cost a round trip per file, and without any flush a power cut
    could keep the rename but lose the contents.
    """
    syncfs = getattr(_libc, "syncfs", None)
    if syncfs is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)
