"""Keep what an agent left in its workspace before the workspace is deleted.

Written into `archive/<job>/`, each file with `atomic_write`:
- `changes.patch`: `git diff --binary HEAD`, tracked changes staged or not (`git apply` it);
- `untracked.tar`: untracked files git does not ignore (`tar x` it);
- `commits.bundle`: commits on local branches or HEAD that no remote-tracking ref has, i.e.
  work the agent committed but nobody pushed (`git fetch` from it);
- `manifest.json` last, with each file's size and SHA-256: its presence means the archive is
  complete.

Idempotent across crashes: with a manifest the work is done and the workspace is not read again
(it may be half deleted by then, though `remove_tree` never shows a half tree under its name);
without one everything is recomputed from the workspace and rewritten whole.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import anyio
import msgspec

from eventlog import atomic_write, fsutil
from service.git import is_repository, run_git
from service.trees import is_atomic_write_temp

PATCH = "changes.patch"
UNTRACKED = "untracked.tar"
COMMITS = "commits.bundle"
MANIFEST = "manifest.json"

_DIFF = (
    "diff",
    "--binary",
    "--full-index",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--src-prefix=a/",
    "--dst-prefix=b/",
)
_UNPUSHED = ("HEAD", "--branches", "--not", "--remotes")


class ArchivedFile(msgspec.Struct, frozen=True):
    size: int
    sha256: str


class ArchiveManifest(msgspec.Struct, frozen=True):
    head: str | None
    files: dict[str, ArchivedFile]


async def archive_changes(workspace: Path, archive_dir: Path) -> bool:
    """Archive the workspace's uncommitted (and unpushed) work; return whether there was any.

    Returns False, writing nothing, when the workspace is not a git repository or has nothing
    to keep. A git error (a workspace whose repository the agent damaged) propagates, so the
    cleanup fails and is retried rather than deleting work it could not read.
    """
    if (archive_dir / MANIFEST).is_file():
        return True
    if not workspace.is_dir() or not await is_repository(workspace):
        return False
    head = await _head_or_none(workspace)
    contents: dict[str, bytes] = {}
    base = head if head is not None else await _empty_tree(workspace)
    patch = (await run_git([*_DIFF, base, "--"], target=workspace)).stdout
    if patch:
        contents[PATCH] = patch
    untracked = await _untracked(workspace)
    if untracked:
        contents[UNTRACKED] = await anyio.to_thread.run_sync(_tar, workspace, untracked)
    if head is not None and await _has_unpushed_commits(workspace):
        bundle = ["bundle", "create", "--quiet", "-", *_UNPUSHED]
        contents[COMMITS] = (await run_git(bundle, target=workspace)).stdout
    if not contents:
        return False
    await anyio.to_thread.run_sync(_write, archive_dir, head, contents)
    return True


async def _head_or_none(workspace: Path) -> str | None:
    result = await run_git(
        ["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], target=workspace, ok_codes=(0, 1)
    )
    return result.stdout.decode().strip() if result.returncode == 0 else None


async def _empty_tree(workspace: Path) -> str:
    """The empty tree's id in this repository's hash (SHA-1 or SHA-256)."""
    result = await run_git(["hash-object", "-t", "tree", "--stdin"], target=workspace)
    return result.stdout.decode().strip()


async def _untracked(workspace: Path) -> list[str]:
    listing = await run_git(["ls-files", "--others", "--exclude-standard", "-z"], target=workspace)
    return sorted(os.fsdecode(name) for name in listing.stdout.split(b"\0") if name)


async def _has_unpushed_commits(workspace: Path) -> bool:
    count = await run_git(["rev-list", "--count", *_UNPUSHED], target=workspace)
    return int(count.stdout) > 0


def _tar(workspace: Path, names: list[str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            tar.add(workspace / name, arcname=name, recursive=False)
    return buffer.getvalue()


def _write(archive_dir: Path, head: str | None, contents: dict[str, bytes]) -> None:
    fsutil.make_dirs(archive_dir)
    for entry in archive_dir.iterdir():
        if is_atomic_write_temp(entry.name):
            entry.unlink()  # an interrupted attempt's
    files = {}
    for name, data in contents.items():
        atomic_write(archive_dir / name, data)
        files[name] = ArchivedFile(len(data), hashlib.sha256(data).hexdigest())
    manifest = ArchiveManifest(head, files)
    atomic_write(archive_dir / MANIFEST, msgspec.json.format(msgspec.json.encode(manifest)))
