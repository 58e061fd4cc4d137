"""A job's workspace: its own copy-on-write copy of the prepared repository, plus its files.

The copy is built at `.<job>.copying` and renamed to `workspaces/<job>` only when whole and on
disk, so an existing workspace is a complete one: creating it again is a no-op, and whatever an
interrupted copy left (including a `cp` still running after a server crash) is discarded by the
next attempt. `cp --reflink=auto -a` shares the file extents on filesystems that can (btrfs,
xfs) and copies elsewhere; a Python copy is the fallback when `cp` itself fails.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio

from eventlog import atomic_write, fsync_dir, make_dirs
from service.run_command import CommandTimeoutError, run_command, tagged_env
from service.trees import COPYING, discard_build, sync_filesystem, temp_sibling

RUNTIME_DIR = ".rewind"
"""Output, heartbeat and exit-code files of the agent, inside the workspace."""
FILES_DIR = "files"
"""Where a job's uploaded files land, inside the workspace."""
PRIVATE_PATTERNS = (f"/{RUNTIME_DIR}/", f"/{FILES_DIR}/")
"""Ignored by git in every workspace (`.git/info/exclude`): not the agent's changes to commit,
and not the changes `archive_changes` keeps."""
COPY_TIMEOUT_S = 1800.0

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")


class WorkspaceCopyError(Exception):
    """The copy timed out, or neither `cp` nor the Python fallback could make it."""


async def create_workspace(
    prepared_repo: Path,
    dest: Path,
    *,
    git_exclude: Sequence[str] = PRIVATE_PATTERNS,
    timeout: float = COPY_TIMEOUT_S,
) -> None:
    """Copy `prepared_repo` to `dest`; no-op if `dest` exists (it can only exist whole)."""
    dest = dest.absolute()
    if dest.is_dir():
        return
    if not prepared_repo.is_dir():
        raise FileNotFoundError(f"the prepared repository {prepared_repo} does not exist")
    prepared_repo = prepared_repo.resolve()  # cp -a would copy a symlink as a symlink
    temp = temp_sibling(dest, COPYING)
    await anyio.to_thread.run_sync(discard_build, temp)
    await anyio.to_thread.run_sync(make_dirs, dest.parent)
    try:
        cp_problem = await _copy_with_cp(prepared_repo, temp, timeout)
        if cp_problem is not None:
            if not prepared_repo.is_dir():
                raise FileNotFoundError(f"the prepared repository {prepared_repo} vanished")
            await anyio.to_thread.run_sync(discard_build, temp)
            await anyio.to_thread.run_sync(_copy_with_python, prepared_repo, temp, cp_problem)
        await anyio.to_thread.run_sync(_exclude_from_git, temp, git_exclude)
        await anyio.to_thread.run_sync(sync_filesystem, temp)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(discard_build, temp)
        raise
    os.rename(temp, dest)
    fsync_dir(dest.parent)


async def _copy_with_cp(source: Path, temp: Path, timeout: float) -> str | None:
    """None on success, else what went wrong (for the error if the fallback fails too)."""
    argv = ["cp", "--reflink=auto", "-a", "--", str(source), str(temp)]
    try:
        result = await run_command(argv, env=tagged_env(os.environ, temp), timeout=timeout)
    except CommandTimeoutError as error:  # a slower copy after it would only wait longer
        raise WorkspaceCopyError(f"copying {source} to {temp}: {error}") from error
    except OSError as error:  # no cp on this machine
        return str(error)
    if result.returncode != 0:
        return result.stderr.decode(errors="replace").strip() or f"exit {result.returncode}"
    return None


def _copy_with_python(source: Path, temp: Path, cp_problem: str) -> None:
    try:
        shutil.copytree(source, temp, symlinks=True)
    except (OSError, shutil.Error) as error:
        raise WorkspaceCopyError(
            f"cannot copy {source} to {temp}: cp said {cp_problem!r}; the Python copy: {error}"
        ) from error


def _exclude_from_git(workspace: Path, patterns: Sequence[str]) -> None:
    info = workspace / ".git" / "info"
    if not patterns or not (workspace / ".git").is_dir():
        return
    exclude = info / "exclude"
    existing = exclude.read_text().splitlines() if exclude.exists() else []
    missing = [pattern for pattern in patterns if pattern not in existing]
    if missing:
        make_dirs(info)
        atomic_write(exclude, "\n".join([*existing, *missing, ""]).encode())


def render_prompt(prompt: str, files: Mapping[str, str | Path]) -> str:
    """Replace each `{{name}}` (spaces inside the braces allowed) by `files[name]`.

    A `{{...}}` that names no staged file is left exactly as written: prompts legitimately
    contain template syntax (Jinja, Handlebars, Go templates), and refusing them would make such
    a prompt impossible to submit. Replacement is one pass, so a path that itself contains
    `{{x}}` is never expanded again.
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(files[name]) if name in files else match.group(0)

    return _PLACEHOLDER.sub(substitute, prompt)
