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

from eventlog import atomic_write, make_dirs
from service.git import is_repository, run_git
from service.run_command import CommandResult
from service.sandbox.spec import SandboxSpec
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


async def archive_changes(
    workspace: Path, archive_dir: Path, sandbox: SandboxSpec | None = None
) -> bool:
    """Archive the workspace's uncommitted (and unpushed) work; return whether there was any.

    git reads the workspace inside `sandbox` when given (see `run_git`): the agent wrote its
    repository. The untracked files are read here, without following links, once the agent
    and everything it started are gone.

    Returns False, writing nothing, when the workspace is not a git repository or has nothing
    to keep. A git error (a workspace whose repository the agent damaged) propagates, so the
    cleanup fails and is retried rather than deleting work it could not read.
    """
    if (archive_dir / MANIFEST).is_file():
        return True
    if not workspace.is_dir() or not await is_repository(workspace, sandbox):
        return False
    git = _Git(workspace, sandbox)
    head = await _head_or_none(git)
    contents: dict[str, bytes] = {}
    base = head if head is not None else await _empty_tree(git)
    patch = (await git([*_DIFF, base, "--"])).stdout
    if patch:
        contents[PATCH] = patch
    untracked = await _untracked(git)
    if untracked:
        contents[UNTRACKED] = await anyio.to_thread.run_sync(_tar, workspace, untracked)
    if head is not None and await _has_unpushed_commits(git):
        bundle = ["bundle", "create", "--quiet", "-", *_UNPUSHED]
        contents[COMMITS] = (await git(bundle)).stdout
    if not contents:
        return False
    await anyio.to_thread.run_sync(_write, archive_dir, head, contents)
    return True


class _Git:
    """git on one workspace, in its sandbox if it has one."""

    def __init__(self, workspace: Path, sandbox: SandboxSpec | None) -> None:
        self.workspace = workspace
        self.sandbox = sandbox

    async def __call__(self, args: list[str], ok_codes: tuple[int, ...] = (0,)) -> CommandResult:
        return await run_git(args, target=self.workspace, ok_codes=ok_codes, sandbox=self.sandbox)


async def _head_or_none(git: _Git) -> str | None:
    result = await git(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], ok_codes=(0, 1))
    return result.stdout.decode().strip() if result.returncode == 0 else None


async def _empty_tree(git: _Git) -> str:
    """The empty tree's id in this repository's hash (SHA-1 or SHA-256)."""
    result = await git(["hash-object", "-t", "tree", "--stdin"])
    return result.stdout.decode().strip()


async def _untracked(git: _Git) -> list[str]:
    listing = await git(["ls-files", "--others", "--exclude-standard", "-z"])
    return sorted(os.fsdecode(name) for name in listing.stdout.split(b"\0") if name)


async def _has_unpushed_commits(git: _Git) -> bool:
    count = await git(["rev-list", "--count", *_UNPUSHED])
    return int(count.stdout) > 0


def _tar(workspace: Path, names: list[str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            tar.add(workspace / name, arcname=name, recursive=False)
    return buffer.getvalue()


def _write(archive_dir: Path, head: str | None, contents: dict[str, bytes]) -> None:
    make_dirs(archive_dir)
    for entry in archive_dir.iterdir():
        if is_atomic_write_temp(entry.name):
            entry.unlink()  # an interrupted attempt's
    files = {}
    for name, data in contents.items():
        atomic_write(archive_dir / name, data)
        files[name] = ArchivedFile(len(data), hashlib.sha256(data).hexdigest())
    manifest = ArchiveManifest(head, files)
    atomic_write(archive_dir / MANIFEST, msgspec.json.format(msgspec.json.encode(manifest)))
