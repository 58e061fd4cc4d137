"""Workspaces: independent copies that exist whole or not at all; prompts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service import git
from service.archive import archive_changes
from service.trees import COPYING, temp_sibling
from service.workspaces import (
    PRIVATE_PATTERNS,
    create_workspace,
    render_prompt,
)
from tests.gitops.helpers import (
    commit,
    kill_group,
    make_upstream,
    python_child,
    start_orphan,
    tagged_pids,
    wait_for,
)

pytestmark = pytest.mark.anyio

_CREATE_CHILD = (
    "import sys, anyio; from pathlib import Path; from service.workspaces import "
    "create_workspace; anyio.run(create_workspace, Path(sys.argv[1]), Path(sys.argv[2]))"
)


@pytest.fixture
async def prepared(tmp_path: Path) -> Path:
    upstream = tmp_path / "up"
    make_upstream(upstream)
    (upstream / "run.sh").write_text("#!/bin/sh\n")
    (upstream / "run.sh").chmod(0o755)
    (upstream / "link").symlink_to("README.md")
    commit(upstream, {})
    repo = tmp_path / "repos" / "app"
    await git.clone(str(upstream), repo)
    return repo


def _snapshot(root: Path) -> dict[str, object]:
    """Every entry under `root`: file bytes and mode, symlink targets, directories."""
    found: dict[str, object] = {}
    for directory, subdirs, files in os.walk(root):
        for name in subdirs + files:
            path = Path(directory, name)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                found[rel] = ("dir",)
            else:
                found[rel] = ("file", path.read_bytes(), path.stat().st_mode)
    return found


async def test_a_workspace_is_an_independent_copy(prepared: Path, tmp_path: Path) -> None:
    workspace = tmp_path / "workspaces" / "job-1"
    await create_workspace(prepared, workspace)
    assert not workspace.is_symlink()
    assert await git.head(workspace) == await git.head(prepared)
    assert os.readlink(workspace / "link") == "README.md"
    assert os.access(workspace / "run.sh", os.X_OK)
    (workspace / "README.md").write_text("agent edit")
    assert (prepared / "README.md").read_text() == "hello\n"
    (prepared / "src" / "app.py").write_text("upstream moved on")
    assert (workspace / "src" / "app.py").read_text() == "print('hi')\n"
    assert sorted(p.name for p in workspace.parent.iterdir()) == ["job-1"]


async def test_runtime_and_upload_dirs_are_invisible_to_git_in_the_workspace_only(
    prepared: Path, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    await create_workspace(prepared, workspace)
    exclude = (workspace / ".git" / "info" / "exclude").read_text().splitlines()
    assert all(pattern in exclude for pattern in PRIVATE_PATTERNS)
    assert not any(p in (prepared / ".git/info/exclude").read_text() for p in PRIVATE_PATTERNS)
    (workspace / ".rewind").mkdir()
    (workspace / ".rewind" / "output").write_text("log")
    (workspace / "files").mkdir()
    (workspace / "files" / "input.csv").write_text("a,b")
    assert not await archive_changes(workspace, tmp_path / "archive-1")  # nothing to keep
    (workspace / "result.txt").write_text("the agent's work")
    assert await archive_changes(workspace, tmp_path / "archive-2")


async def test_creating_again_is_a_noop(prepared: Path, tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    await create_workspace(prepared, workspace)
    (workspace / "progress").write_text("agent is working")
    await create_workspace(prepared, workspace)
    assert (workspace / "progress").read_text() == "agent is working"


async def test_python_copy_when_cp_cannot_run(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-binaries-here"))
    workspace = tmp_path / "ws"
    await create_workspace(prepared, workspace)
    assert _snapshot(workspace) == _snapshot(prepared) | {
        ".git/info/exclude": _snapshot(workspace)[".git/info/exclude"]
    }
    assert os.readlink(workspace / "link") == "README.md"


async def test_missing_prepared_repository(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="prepared repository"):
        await create_workspace(tmp_path / "nope", tmp_path / "ws")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


async def test_a_symlinked_prepared_repository_is_copied_not_linked(
    prepared: Path, tmp_path: Path
) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(prepared)
    await create_workspace(alias, tmp_path / "ws")
    assert (tmp_path / "ws").is_dir() and not (tmp_path / "ws").is_symlink()


async def test_a_leftover_partial_copy_and_its_cp_are_discarded(
    prepared: Path, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    temp = temp_sibling(workspace, COPYING)
    temp.mkdir()
    (temp / "half-copied").write_text("junk")
    orphan = start_orphan(temp)
    await create_workspace(prepared, workspace)
    assert orphan.wait(timeout=5) != 0
    assert not temp.exists()
    assert not (workspace / "half-copied").exists()
    assert await git.head(workspace) == await git.head(prepared)


@pytest.fixture
def big_tree(tmp_path: Path) -> Path:
    """Enough files that a copy takes a while, so a kill lands in the middle of it."""
    root = tmp_path / "big"
    for d in range(30):
        sub = root / f"d{d:02}"
        sub.mkdir(parents=True)
        for f in range(20):
            (sub / f"f{f:03}.bin").write_bytes(os.urandom(8192))
    return root


def _assert_whole_or_absent(dest: Path, source: Path) -> None:
    if os.path.lexists(dest):
        assert _snapshot(dest) == _snapshot(source), f"partial copy at {dest}"


def _crash_mid_copy(code: str, source: Path, dest: Path, started: Path) -> None:
    child = python_child(code, str(source), str(dest))
    wait_for(started.exists)
    kill_group(child)


async def test_copy_killed_midway_leaves_no_partial_workspace_and_a_rerun_finishes(
    big_tree: Path, tmp_path: Path
) -> None:
    workspace = tmp_path / "workspaces" / "job-1"
    workspace.parent.mkdir()
    temp = temp_sibling(workspace, COPYING)
    _crash_mid_copy(_CREATE_CHILD, big_tree, workspace, temp)
    _assert_whole_or_absent(workspace, big_tree)
    await create_workspace(big_tree, workspace)
    assert tagged_pids(temp) == []
    assert not temp.exists()
    assert _snapshot(workspace) == _snapshot(big_tree)


def test_a_copy_straight_into_the_workspace_is_caught(big_tree: Path, tmp_path: Path) -> None:
    """Broken variant: `cp -a source dest` with no temp + rename leaves a partial workspace
    that a rerun would take for a finished one."""
    workspace = tmp_path / "ws"
    naive = "import subprocess, sys; subprocess.run(['cp', '-a', *sys.argv[1:]])"
    _crash_mid_copy(naive, big_tree, workspace, workspace)
    with pytest.raises(AssertionError, match="partial copy"):
        _assert_whole_or_absent(workspace, big_tree)


def test_render_prompt() -> None:
    files = {"data.csv": "/w/job/files/data.csv", "é 1.txt": "/w/job/files/é 1.txt"}
    prompt = "Read {{data.csv}} and {{ data.csv }} and {{é 1.txt}}; keep {{ unknown }}"
    assert render_prompt(prompt, files) == (
        "Read /w/job/files/data.csv and /w/job/files/data.csv and /w/job/files/é 1.txt; "
        "keep {{ unknown }}"
    )
    assert render_prompt("{{a}}{{b}}", {"a": "{{b}}", "b": "B"}) == "{{b}}B"  # one pass
    jinja = "Jinja: {% if x %}{{ x }}{% endif %}"
    assert render_prompt(jinja, {}) == jinja
    assert render_prompt("no placeholders", files) == "no placeholders"
