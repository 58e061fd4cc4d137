"""The git operations the server performs on registered repositories, through the git CLI.

Every call runs git with a deadline and an environment that no user or system configuration can
influence (`GIT_CONFIG_GLOBAL=/dev/null`, `GIT_CONFIG_NOSYSTEM=1`), that never prompts
(`GIT_TERMINAL_PROMPT=0`, ssh in batch mode), that allows only the file, https and ssh transports,
that never discovers a repository above the directory it was given (`GIT_CEILING_DIRECTORIES`:
a workspace under `./data` inside a git checkout must not be mistaken for that checkout), and
that never runs hooks or an fsmonitor (a workspace's `.git/config` is the agent's to write).

Credentials (`Auth`, from the secrets store) reach git as HTTP basic auth in configuration
given through the environment (`GIT_CONFIG_COUNT`, git >= 2.31), scoped to the one remote
URL: never in argv (which /proc/<pid>/cmdline shows to every user), never in the clone's
`.git/config` (which a workspace copies to the agent), never in a message.

Crash safety: `clone` builds the repository beside its destination and renames it into place,
so the destination is a whole clone or absent. `pull` is fetch + forced checkout, which reaches
the same end state however often it runs; it first kills git processes a crashed call left
running on that repository and removes the lock files they left, which otherwise make every
later git command fail with "index.lock: File exists".
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote

import anyio

from eventlog import fsync_dir, make_dirs
from projections.redact import redact_url
from service.git_inputs import validate_branch, validate_url
from service.run_command import (
    CommandResult,
    CommandTimeoutError,
    reap_orphans,
    run_command,
    tagged_env,
)
from service.sandbox import bwrap
from service.sandbox.spec import SandboxSpec
from service.trees import CLONING, discard_build, sync_filesystem, temp_sibling

CLONE_TIMEOUT_S = 900.0
FETCH_TIMEOUT_S = 600.0
LOCAL_TIMEOUT_S = 120.0

_ALLOWED_PROTOCOLS = "file:https:ssh"
_KEPT_GIT_VARS = {
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_SSH_VARIANT",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
}
_SAFETY = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false")
_DETAIL_MAX = 400


class Auth(NamedTuple):
    """HTTP basic credentials for one remote."""

    url: str
    """The remote they are for, without userinfo; git sends them to that URL only."""
    userinfo: str
    """`user:password` or a token alone, percent-encoded as in a URL."""


class GitError(Exception):
    """A git command failed; `str()` is one line: the command and git's own words."""

    def __init__(self, command: str, detail: str, returncode: int | None = None) -> None:
        self.command = command
        self.detail = detail
        self.returncode = returncode
        status = "" if returncode is None else f" (exit {returncode})"
        super().__init__(f"{command} failed{status}: {detail}")


def git_env(target: Path) -> dict[str, str]:
    """The environment of a git command working on `target` (see the module docstring)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GIT_") or key in _KEPT_GIT_VARS or key.startswith("GIT_TRACE")
    }
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_ALLOW_PROTOCOL=_ALLOWED_PROTOCOLS,
        GIT_OPTIONAL_LOCKS="0",
        GIT_CEILING_DIRECTORIES=str(target.parent),
        LC_ALL="C",
    )
    if "GIT_SSH_COMMAND" not in env and "GIT_SSH" not in env:
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    return tagged_env(env, target)


def auth_env(auth: Auth) -> dict[str, str]:
    """git configuration, through the environment, that sends `auth` to its URL (and on to
    where that URL redirects on the same host: curl drops the header for another host)."""
    user, _, password = auth.userinfo.partition(":")
    basic = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"http.{auth.url}.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
    }


async def run_git(
    args: Sequence[str],
    *,
    target: Path,
    timeout: float = LOCAL_TIMEOUT_S,
    cwd: Path | None = None,
    ok_codes: tuple[int, ...] = (0,),
    auth: Auth | None = None,
    sandbox: SandboxSpec | None = None,
) -> CommandResult:
    """Run `git ARGS` on `target` (also the working directory unless `cwd` is given).

    With `sandbox`, git runs inside it, as the agent: the way to read a workspace, whose
    `.git/config` and `.gitattributes` the agent wrote (a filter driver there runs a command of
    its choosing), and which belongs to the agent's uid."""
    command = redact_url(" ".join(["git", *args]))
    target = target.absolute()
    argv = ["git", *_SAFETY, *args]
    env = git_env(target)
    if auth is not None:
        env.update(auth_env(auth))
    try:
        if sandbox is None:
            result = await run_command(
                argv, env=env, timeout=timeout, cwd=cwd if cwd is not None else target
            )
        else:
            done = await anyio.to_thread.run_sync(
                functools.partial(bwrap.run, sandbox, argv, env, timeout=timeout)
            )
            result = CommandResult(tuple(argv), done.returncode, done.stdout, done.stderr)
    except subprocess.TimeoutExpired as timed_out:
        detail = f"timed out after {timeout:g}s; {_trim(timed_out.stderr or b'')}"
        raise GitError(command, detail) from None
    except bwrap.SandboxStartError as failed:
        raise GitError(command, f"cannot start in the sandbox: {failed}") from None
    except CommandTimeoutError as timed_out:
        detail = f"timed out after {timeout:g}s; {_trim(timed_out.stderr)}"
        raise GitError(command, detail) from None
    except FileNotFoundError as missing:
        raise GitError(command, f"cannot start: {missing}") from None
    if result.returncode not in ok_codes:
        raise GitError(command, _trim(result.stderr) or "no message", result.returncode)
    return result


def _trim(stderr: bytes) -> str:
    """git's message on one line: its fatal/error lines if any, else all of it, bounded."""
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    important = [line for line in lines if line.startswith(("fatal:", "error:"))]
    text = redact_url(" | ".join(important or lines))
    return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 3] + "..."


async def clone(
    url: str,
    dest: Path,
    branch: str | None = None,
    *,
    timeout: float = CLONE_TIMEOUT_S,
    auth: Auth | None = None,
) -> str:
    """Clone `url` (its `branch`, else its default branch) to `dest`; return the HEAD commit.

    Idempotent: a temp clone left by a crashed call (and any git still running on it) is removed
    first; an existing healthy clone of the same URL on the same branch is kept and its HEAD
    returned. Any other existing `dest` is an error: replacing it is the caller's decision.
    The clone is flushed to disk before the rename, so after a power cut `dest` is whole too.
    """
    url = validate_url(url)
    if branch is not None:
        validate_branch(branch)
    dest = dest.absolute()
    if os.path.lexists(dest):
        return await _existing_clone(url, dest, branch)
    temp = temp_sibling(dest, CLONING)
    await anyio.to_thread.run_sync(discard_build, temp)
    await anyio.to_thread.run_sync(make_dirs, dest.parent)
    args = ["clone", "--quiet", "--no-hardlinks"]
    if branch is not None:
        args += ["--branch", branch]
    try:
        await run_git(
            [*args, "--", url, str(temp)], target=temp, cwd=dest.parent, timeout=timeout, auth=auth
        )
        commit = await head(temp)
        await anyio.to_thread.run_sync(sync_filesystem, temp)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(discard_build, temp)
        raise
    os.rename(temp, dest)
    fsync_dir(dest.parent)
    return commit


async def _existing_clone(url: str, dest: Path, branch: str | None) -> str:
    problem = await check_health(dest)
    if problem is not None:
        raise GitError(
            f"git clone {redact_url(url)}", f"{dest} exists and is not usable: {problem}"
        )
    origin = await run_git(["config", "--get", "remote.origin.url"], target=dest, ok_codes=(0, 1))
    current = await current_branch(dest)
    if origin.stdout.decode().strip() != url or (branch is not None and current != branch):
        raise GitError(
            f"git clone {redact_url(url)}",
            f"{dest} already holds a clone of {redact_url(origin.stdout.decode().strip())!r} "
            f"on branch {current!r}",
        )
    return await head(dest)


async def pull(
    repo_dir: Path,
    branch: str | None = None,
    *,
    timeout: float = FETCH_TIMEOUT_S,
    auth: Auth | None = None,
) -> str:
    """Make `repo_dir` exactly `origin/<branch>` (default: its current branch); return HEAD.

    Fetch + `checkout --force -B`: never a merge, so it cannot conflict, and running it again
    (after a crash at any point) reaches the same state. Local changes to tracked files are
    discarded; untracked files (an index command's output) are kept.
    """
    repo = repo_dir.absolute()
    if not repo.is_dir():
        raise GitError(f"git pull in {repo}", f"{repo} does not exist")
    await anyio.to_thread.run_sync(_recover_interrupted, repo)
    branch = validate_branch(branch) if branch is not None else await current_branch(repo)
    if branch is None:
        raise GitError(f"git pull in {repo}", "HEAD is detached and no branch was given")
    remote_ref = f"refs/remotes/origin/{branch}"
    refspec = f"+refs/heads/{branch}:{remote_ref}"
    fetch = ["fetch", "--quiet", "--no-tags", "origin", refspec]
    await run_git(fetch, target=repo, timeout=timeout, auth=auth)
    await run_git(["checkout", "--quiet", "--force", "-B", branch, remote_ref, "--"], target=repo)
    return await head(repo)


def _recover_interrupted(repo: Path) -> None:
    """Kill git processes a crashed call left on `repo`, then remove the locks they held."""
    reap_orphans(repo)
    git_dir = repo / ".git"
    candidates = [*git_dir.glob("*.lock"), *git_dir.glob("objects/info/**/*.lock")]
    for sub in ("refs", "logs"):
        candidates += (git_dir / sub).glob("**/*.lock")
    for lock in candidates:
        lock.unlink(missing_ok=True)


async def head(repo_dir: Path) -> str:
    """The commit HEAD points to, as 40 hex digits."""
    result = await run_git(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], target=repo_dir)
    return result.stdout.decode().strip()


async def current_branch(repo_dir: Path) -> str | None:
    """The checked-out branch's short name, or None when HEAD is detached."""
    result = await run_git(
        ["symbolic-ref", "--quiet", "--short", "HEAD"], target=repo_dir, ok_codes=(0, 1)
    )
    return result.stdout.decode().strip() if result.returncode == 0 else None


async def is_repository(path: Path, sandbox: SandboxSpec | None = None) -> bool:
    """Whether `path` is itself the top of a git working tree (never a directory inside one)."""
    if not (path / ".git").exists():
        return False
    try:
        result = await run_git(["rev-parse", "--show-toplevel"], target=path, sandbox=sandbox)
    except GitError:
        return False
    return Path(result.stdout.decode().strip()) == path.resolve()


async def check_health(repo_dir: Path) -> str | None:
    """None if the clone can serve jobs, else why not, in one line.

    Checks what a job needs and nothing proportional to history: the directory, that it is a
    repository of its own, that HEAD names a commit, that every tree of that commit reads
    (`ls-tree -r`) and that the index matches its checksum. `git fsck --connectivity-only`
    would read every commit and tree of the whole history, at every startup, for every
    repository; blob contents are not read by either, so a damaged blob shows up as a git error
    in the job that reads it.
    """
    path = repo_dir.absolute()
    if not path.exists():
        return f"{path} is missing"
    if not path.is_dir():
        return f"{path} is not a directory"
    if not await is_repository(path):
        return f"{path} is not a git repository (its .git is missing or damaged)"
    checks = (
        (["rev-parse", "--verify", "HEAD^{commit}"], "HEAD does not name a readable commit"),
        (["ls-tree", "-r", "--full-tree", "--name-only", "-z", "HEAD"], "HEAD's trees are damaged"),
        (["rev-parse", "--git-path", "index"], "the index cannot be found"),
    )
    outputs = []
    for args, meaning in checks:
        try:
            outputs.append((await run_git(args, target=path)).stdout.decode().strip())
        except GitError as error:
            return f"{meaning}: {error.detail}"
    head_id, _, index = outputs
    return await anyio.to_thread.run_sync(_index_damage, path / index, len(head_id))


def _index_damage(index: Path, oid_hex_len: int) -> str | None:
    """Verify the index's trailing checksum, which git itself checks only in `git fsck`.

    A missing index is not damage: `pull`'s forced checkout writes a new one.
    """
    try:
        data = index.read_bytes()
    except FileNotFoundError:
        return None
    size = oid_hex_len // 2
    if len(data) < 12 + size or data[:4] != b"DIRC":
        return f"the index is damaged: {index} has no index header"
    trailer = data[-size:]
    digest = hashlib.sha1 if size == 20 else hashlib.sha256
    if trailer != bytes(size) and digest(data[:-size]).digest() != trailer:
        return f"the index is damaged: {index} fails its checksum"
    return None
