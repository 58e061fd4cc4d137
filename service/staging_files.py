"""Uploaded files waiting for their job: `staging/<job>/<name>`, until the job's workspace exists.

Each file is written whole and durably before the upload is acknowledged, so a crash never
leaves a half file under a staged name; the only leftovers are the temp files it is written to
first (`.<name>.<random digits>.tmp`), which is why names of that shape are refused at upload
and skipped everywhere else. `consume` moves the files into the workspace one rename at a time and
then removes the directory: after a crash half way, running it again moves the rest.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from eventlog import REAL, atomic_write, fsync_dir, make_dirs, write_all
from service.trees import is_atomic_write_temp, remove_tree, stray_temps

MAX_NAME_BYTES = 200
"""NAME_MAX is 255 bytes; the temp file needs room for `.<name>.<up to 20 digits>.tmp`."""

_REFUSED_CATEGORIES = {"Cc", "Cs", "Co", "Cn", "Zl", "Zp"}
_BIDI_CONTROLS = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class BadFilenameError(ValueError):
    """An uploaded file's name cannot be used as a single file name."""


class StagedFileTooLargeError(ValueError):
    """An uploaded file is over the size limit."""


@dataclass(frozen=True)
class StagedFile:
    name: str
    size: int
    sha256: str
    path: Path


def sanitize_filename(name: str) -> str:
    """`name` as stored: NFC-normalized and stripped of surrounding whitespace, or an error.

    Refused: empty, `.` and `..`, any `/` or `\\` (so any absolute or relative path), control,
    unassigned and private-use characters, line separators and bidi overrides (which make a
    name display as another), more than MAX_NAME_BYTES bytes of UTF-8, and the temp-file shape
    `.<x>.<digits>.tmp`. Letters of any script are kept as they are.
    """
    cleaned = unicodedata.normalize("NFC", name).strip()
    if not cleaned:
        raise BadFilenameError("the file name is empty")
    if cleaned in (".", ".."):
        raise BadFilenameError(f"{cleaned!r} is not a file name")
    if "/" in cleaned or "\\" in cleaned:
        raise BadFilenameError(f"the file name {cleaned!r} contains a path separator")
    for char in cleaned:
        if unicodedata.category(char) in _REFUSED_CATEGORIES or char in _BIDI_CONTROLS:
            raise BadFilenameError(f"the file name {cleaned!r} contains U+{ord(char):04X}")
    if len(cleaned.encode()) > MAX_NAME_BYTES:
        raise BadFilenameError(f"the file name is over {MAX_NAME_BYTES} bytes of UTF-8")
    if is_atomic_write_temp(cleaned):
        raise BadFilenameError(f"the file name {cleaned!r} has the shape reserved for temp files")
    return cleaned


def _check_job_id(job_id: str) -> None:
    if job_id.startswith(".") or sanitize_filename(job_id) != job_id:
        raise BadFilenameError(f"{job_id!r} cannot name a staging directory")


def stage_file(
    staging_root: Path, job_id: str, name: str, data: bytes, max_bytes: int
) -> StagedFile:
    """Store one upload durably under `staging_root/<job_id>/`; the same name again replaces it.

    Uploads of one name may run at once: each writes a temp file of its own and renames it over
    the name when whole, so the name always holds one upload's bytes, whole. Which one depends
    on the order of the renames: the caller keeps that order and the log's in step.
    """
    _check_job_id(job_id)
    name = sanitize_filename(name)
    if len(data) > max_bytes:
        raise StagedFileTooLargeError(
            f"{name} is {len(data)} bytes, over the limit of {max_bytes} bytes"
        )
    directory = staging_root / job_id
    make_dirs(directory)
    path = directory / name
    temp = _write_temp(directory, name, data)
    try:
        os.rename(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(directory)
    return StagedFile(name, len(data), hashlib.sha256(data).hexdigest(), path)


def _write_temp(directory: Path, name: str, data: bytes) -> Path:
    """`data` in a new, synced file of `directory` that no other upload can be writing: a
    random name, created exclusively, readable by the server's user only (mode 0600)."""
    temp = directory / f".{name}.{secrets.randbits(64)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            write_all(REAL, fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def staged_names(staging_dir: Path) -> list[str]:
    """The complete staged files in `staging_dir`, sorted (temp files of a crash left out)."""
    if not staging_dir.is_dir():
        return []
    return sorted(
        entry.name
        for entry in os.scandir(staging_dir)
        if entry.is_file(follow_symlinks=False) and not is_atomic_write_temp(entry.name)
    )


def consume(staging_dir: Path, files_dir: Path) -> None:
    """Move every staged file into `files_dir`, then remove `staging_dir`.

    Idempotent: files moved by an interrupted call are in `files_dir` already; the rest move
    now; a missing `staging_dir` means a previous call finished. A staged name that exists in
    `files_dir` is replaced by the staged file.
    """
    names = staged_names(staging_dir)
    if names:
        make_dirs(files_dir)
        for name in names:
            _move(staging_dir / name, files_dir / name)
        fsync_dir(files_dir)
        fsync_dir(staging_dir)
    remove_tree(staging_dir)


def _move(source: Path, target: Path) -> None:
    """Put `source`'s bytes at `target`, whole: a rename on one filesystem, else a durable
    copy and the source removed once the copy is durable."""
    try:
        os.rename(source, target)
        return
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
    atomic_write(target, source.read_bytes())
    source.unlink()


def remove_staging(staging_dir: Path) -> None:
    """Remove a job's staging directory (and what an interrupted removal left); idempotent."""
    remove_tree(staging_dir)


def list_staging_dirs(staging_root: Path) -> list[tuple[str, Path, float]]:
    """(job id, staging dir, mtime) of every job with something under `staging_root`.

    Includes jobs whose directory only survives as an interrupted removal: `remove_staging`
    of the returned path finishes it. Sorted by job id.
    """
    found: dict[str, tuple[str, Path, float]] = {}
    if not staging_root.is_dir():
        return []
    for entry in os.scandir(staging_root):
        if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
            found[entry.name] = (entry.name, Path(entry.path), entry.stat().st_mtime)
    for owner, temp in stray_temps(staging_root):
        if owner not in found:
            with contextlib.suppress(FileNotFoundError):
                found[owner] = (owner, staging_root / owner, temp.lstat().st_mtime)
    return [found[job_id] for job_id in sorted(found)]
