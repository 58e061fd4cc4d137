"""clone and pull against real repositories, including after a kill -9 in the middle."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from service import git
from service.trees import CLONING, temp_sibling
from tests.gitops.helpers import (
    commit,
    kill_group,
    make_upstream,
    python_child,
    start_orphan,
    tagged_pids,
    wait_for,
)
from tests.gitops.helpers import git as plain_git

pytestmark = pytest.mark.anyio

_CLONE_CHILD = (
    "import sys, anyio; from pathlib import Path; from service import git; "
    "anyio.run(git.clone, sys.argv[1], Path(sys.argv[2]))"
)
_PULL_CHILD = (
    "import sys, anyio; from pathlib import Path; from service import git; "
    "anyio.run(git.pull, Path(sys.argv[1]))"
)


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    make_upstream(tmp_path / "up")
    return tmp_path / "up"


@dataclass
class SlowSsh:
    """An ssh stand-in that serves the local repository once `hold` is removed: a real git
    transport whose first byte we control, so a kill lands mid-clone every time."""

    hold: Path
    started: Path

    def url(self, repo: Path) -> str:
        return f"ssh://localhost{repo}"


@pytest.fixture
def slow_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SlowSsh:
    script = tmp_path / "slow-ssh"
    script.write_text(
        '#!/bin/sh\ntouch "$SSH_STARTED"\n'
        'while [ -e "$SSH_HOLD" ]; do sleep 0.02; done\nexec sh -c "$2"\n'
    )
    script.chmod(0o755)
    ssh = SlowSsh(tmp_path / "hold", tmp_path / "started")
    monkeypatch.setenv("GIT_SSH_COMMAND", str(script))
    monkeypatch.setenv("GIT_SSH_VARIANT", "simple")
    monkeypatch.setenv("SSH_HOLD", str(ssh.hold))
    monkeypatch.setenv("SSH_STARTED", str(ssh.started))
    return ssh


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


@pytest.mark.parametrize("scheme", ["path", "file"])
async def test_clone_of_local_path_and_file_url(
    upstream: Path, tmp_path: Path, scheme: str
) -> None:
    url = str(upstream) if scheme == "path" else f"file://{upstream}"
    dest = tmp_path / "repos" / "app"
    commit_id = await git.clone(url, dest, "main")
    assert commit_id == plain_git(upstream, "rev-parse", "HEAD")
    assert await git.head(dest) == commit_id
    assert await git.check_health(dest) is None
    assert (dest / "src" / "app.py").read_text() == "print('hi')\n"
    assert plain_git(dest, "config", "remote.origin.url") == url
    assert _siblings(dest) == ["app"]


async def test_clone_again_is_a_noop_but_another_url_is_refused(
    upstream: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "app"
    first = await git.clone(str(upstream), dest)
    marker = dest / "untracked-marker"
    marker.write_text("kept")
    assert await git.clone(str(upstream), dest) == first
    assert marker.exists()
    other = tmp_path / "other"
    make_upstream(other)
    with pytest.raises(git.GitError, match="already holds a clone"):
        await git.clone(str(other), dest)
    with pytest.raises(git.GitError, match="on branch 'main'"):
        await git.clone(str(upstream), dest, "dev")


async def test_bad_url_or_branch_fails_with_gits_own_message_on_one_line(
    upstream: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "app"
    with pytest.raises(git.GitError) as missing:
        await git.clone(str(tmp_path / "nope"), dest)
    message = str(missing.value)
    assert "does not exist" in message and "git clone" in message and "exit 128" in message
    assert "\n" not in message
    with pytest.raises(git.GitError, match="Remote branch nob not found"):
        await git.clone(str(upstream), dest, "nob")
    assert not os.path.lexists(dest)
    assert _siblings(dest) == ["up"]


async def test_user_and_system_git_configuration_has_no_say(
    upstream: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(f'[url "/nonexistent/"]\n\tinsteadOf = {upstream}\n')
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    ordinary = subprocess.run(["git", "ls-remote", str(upstream)], capture_output=True, check=False)
    assert ordinary.returncode != 0, "the user's config should redirect an ordinary git"
    elsewhere = tmp_path / "elsewhere"
    make_upstream(elsewhere, {"other.txt": "x"})
    monkeypatch.setenv("GIT_DIR", str(elsewhere / ".git"))
    dest = tmp_path / "app"
    assert await git.clone(str(upstream), dest) == plain_git(upstream, "rev-parse", "HEAD")
    assert await git.head(dest) == plain_git(upstream, "rev-parse", "HEAD")


async def test_program_running_transports_are_refused_by_git_as_well(tmp_path: Path) -> None:
    """Defense in depth: even past validate_url, GIT_ALLOW_PROTOCOL stops ext::."""
    proof = tmp_path / "pwned"
    dest = tmp_path / "dest"
    with pytest.raises(git.GitError, match="transport 'ext' not allowed"):
        await git.run_git(
            ["clone", f"ext::sh -c touch% {proof}", str(dest)], target=dest, cwd=tmp_path
        )
    assert not proof.exists()


async def test_a_leftover_temp_clone_and_its_git_are_cleared(
    upstream: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "app"
    temp = temp_sibling(dest, CLONING)
    (temp / ".git").mkdir(parents=True)
    (temp / ".git" / "HEAD").write_text("ref: refs/heads/half\n")
    orphan = start_orphan(temp)
    assert tagged_pids(temp) == [orphan.pid]
    assert await git.clone(str(upstream), dest) == plain_git(upstream, "rev-parse", "HEAD")
    assert orphan.wait(timeout=5) != 0
    assert tagged_pids(temp) == []
    assert _siblings(dest) == ["app", "up"]
    assert await git.check_health(dest) is None


def _crash_mid_clone(code: str, url: str, dest: Path, ssh: SlowSsh) -> None:
    """Start a clone in a child, kill -9 it once the transport has started, leave the rest."""
    ssh.hold.touch()
    child = python_child(code, url, str(dest))
    wait_for(ssh.started.exists)
    kill_group(child)


def _assert_whole_or_absent(dest: Path, expected_head: str) -> None:
    if os.path.lexists(dest):
        assert plain_git(dest, "rev-parse", "HEAD") == expected_head, f"half clone at {dest}"


async def test_clone_killed_midway_leaves_no_half_repository_and_a_rerun_finishes(
    upstream: Path, tmp_path: Path, slow_ssh: SlowSsh
) -> None:
    dest = tmp_path / "repos" / "app"
    temp = temp_sibling(dest, CLONING)
    url = slow_ssh.url(upstream)
    _crash_mid_clone(_CLONE_CHILD, url, dest, slow_ssh)
    expected = plain_git(upstream, "rev-parse", "HEAD")
    assert not os.path.lexists(dest)
    assert (temp / ".git").is_dir()
    assert tagged_pids(temp), "the crashed clone's git should still be running"
    slow_ssh.hold.unlink()  # the orphan may now race the rerun: the rerun must kill it first
    assert await git.clone(url, dest) == expected
    assert tagged_pids(temp) == []
    assert _siblings(dest) == ["app"]
    assert await git.check_health(dest) is None
    _assert_whole_or_absent(dest, expected)


def test_a_clone_straight_into_its_destination_is_caught(
    upstream: Path, tmp_path: Path, slow_ssh: SlowSsh
) -> None:
    """Broken variant: `git clone url dest` with no temp + rename leaves a half repository."""
    dest = tmp_path / "app"
    naive = "import subprocess, sys; subprocess.run(['git', 'clone', '-q', *sys.argv[1:]])"
    _crash_mid_clone(naive, slow_ssh.url(upstream), dest, slow_ssh)
    with pytest.raises(AssertionError):
        _assert_whole_or_absent(dest, plain_git(upstream, "rev-parse", "HEAD"))
    slow_ssh.hold.unlink()


async def test_clone_past_its_deadline_is_killed_with_its_children(
    upstream: Path, tmp_path: Path, slow_ssh: SlowSsh
) -> None:
    dest = tmp_path / "app"
    slow_ssh.hold.touch()
    with pytest.raises(git.GitError, match=r"timed out after 0\.5s"):
        await git.clone(slow_ssh.url(upstream), dest, timeout=0.5)
    assert tagged_pids(temp_sibling(dest, CLONING)) == []
    assert [name for name in _siblings(dest) if "app" in name] == []


async def test_pull_picks_up_new_commits_and_is_idempotent(upstream: Path, tmp_path: Path) -> None:
    dest = tmp_path / "app"
    first = await git.clone(str(upstream), dest)
    assert await git.pull(dest) == first
    (dest / "README.md").write_text("local edit\n")
    (dest / "index-output.db").write_text("built by the index command")
    second = commit(upstream, {"README.md": "v2\n", "new.txt": "n\n"})
    assert await git.pull(dest, "main") == second
    assert await git.pull(dest, "main") == second
    assert (dest / "README.md").read_text() == "v2\n"
    assert (dest / "new.txt").exists()
    assert (dest / "index-output.db").exists()
    assert plain_git(dest, "status", "--porcelain", "--untracked-files=no") == ""


async def test_pull_follows_a_rewritten_upstream_and_switches_branch(
    upstream: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "app"
    base = await git.clone(str(upstream), dest)
    commit(upstream, {"a.txt": "1"})
    await git.pull(dest)
    plain_git(upstream, "reset", "-q", "--hard", base)
    rewritten = commit(upstream, {"b.txt": "2"}, "rewritten history")
    assert await git.pull(dest) == rewritten
    assert not (dest / "a.txt").exists()
    plain_git(upstream, "checkout", "-q", "-b", "dev")
    dev = commit(upstream, {"dev.txt": "d"})
    assert await git.pull(dest, "dev") == dev
    assert await git.current_branch(dest) == "dev"


def _leave_crash_residue(repo: Path) -> None:
    """What a kill -9 during checkout or a ref update leaves: lock files git never removes."""
    (repo / ".git" / "index.lock").write_bytes(b"half an index")
    (repo / ".git" / "refs" / "remotes" / "origin").mkdir(parents=True, exist_ok=True)
    (repo / ".git" / "refs" / "remotes" / "origin" / "main.lock").write_text("x")


async def test_pull_recovers_from_locks_and_a_git_left_running_by_a_crash(
    upstream: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "app"
    await git.clone(str(upstream), dest)
    new = commit(upstream, {"x.txt": "x"})
    _leave_crash_residue(dest)
    orphan = start_orphan(dest)
    assert await git.pull(dest) == new
    assert orphan.wait(timeout=5) != 0
    assert not (dest / ".git" / "index.lock").exists()
    assert await git.check_health(dest) is None


async def test_a_pull_that_ignores_crash_residue_is_caught(upstream: Path, tmp_path: Path) -> None:
    """Broken variant: plain fetch + checkout, as most wrappers do, fails forever after a crash."""
    dest = tmp_path / "app"
    await git.clone(str(upstream), dest)
    commit(upstream, {"x.txt": "x"})
    _leave_crash_residue(dest)
    naive = subprocess.run(
        "git fetch -q origin && git checkout -q -f -B main origin/main",
        shell=True,
        cwd=dest,
        capture_output=True,
        text=True,
        check=False,
    )
    assert naive.returncode != 0
    assert ".lock" in naive.stderr


async def test_pull_killed_mid_fetch_then_rerun(
    upstream: Path, tmp_path: Path, slow_ssh: SlowSsh
) -> None:
    dest = tmp_path / "app"
    await git.clone(slow_ssh.url(upstream), dest)
    new = commit(upstream, {"y.txt": "y"})
    slow_ssh.started.unlink()
    slow_ssh.hold.touch()
    child = python_child(_PULL_CHILD, str(dest))
    wait_for(slow_ssh.started.exists)
    kill_group(child)
    assert tagged_pids(dest), "the crashed pull's git fetch should still be running"
    slow_ssh.hold.unlink()
    assert await git.pull(dest) == new
    assert tagged_pids(dest) == []
    assert await git.check_health(dest) is None


async def test_a_token_in_the_url_never_reaches_the_error(tmp_path: Path) -> None:
    with pytest.raises(git.GitError) as caught:
        await git.clone("https://bob:s3cret-token@127.0.0.1:1/app.git", tmp_path / "app")
    assert "s3cret-token" not in str(caught.value)
    assert "bob:***@127.0.0.1" in str(caught.value)
