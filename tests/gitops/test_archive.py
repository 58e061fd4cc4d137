"""archive_changes keeps exactly the work a cleanup would otherwise delete, once."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import msgspec
import pytest

from service import git
from service.archive import COMMITS, MANIFEST, PATCH, UNTRACKED, ArchiveManifest, archive_changes
from service.trees import remove_tree
from service.workspaces import create_workspace
from tests.gitops.helpers import commit, make_upstream
from tests.gitops.helpers import git as plain_git

pytestmark = pytest.mark.anyio


@pytest.fixture
async def workspace(tmp_path: Path) -> Path:
    upstream = tmp_path / "up"
    make_upstream(upstream, {"README.md": "hello\n", "src/app.py": "print('hi')\n", "old.txt": "o"})
    (upstream / ".gitignore").write_text("*.log\n")
    commit(upstream, {})
    prepared = tmp_path / "prepared"
    await git.clone(str(upstream), prepared)
    ws = tmp_path / "workspaces" / "job-1"
    await create_workspace(prepared, ws)
    return ws


def _manifest(archive: Path) -> ArchiveManifest:
    return msgspec.json.decode((archive / MANIFEST).read_bytes(), type=ArchiveManifest)


async def _fresh_clone_at_head(workspace: Path, into: Path) -> Path:
    await git.clone(str(workspace), into)
    return into


async def test_tracked_changes_become_a_patch_that_reproduces_them(
    workspace: Path, tmp_path: Path
) -> None:
    (workspace / "README.md").write_text("rewritten by the agent\n")
    (workspace / "old.txt").unlink()
    (workspace / "image.bin").write_bytes(bytes(range(256)) * 4)
    plain_git(workspace, "add", "image.bin")  # staged, never committed
    archive = tmp_path / "archive" / "job-1"
    assert await archive_changes(workspace, archive)
    assert sorted(p.name for p in archive.iterdir()) == [PATCH, MANIFEST]
    replay = await _fresh_clone_at_head(workspace, tmp_path / "replay")
    plain_git(replay, "apply", "--index", str(archive / PATCH))
    assert (replay / "README.md").read_text() == "rewritten by the agent\n"
    assert not (replay / "old.txt").exists()
    assert (replay / "image.bin").read_bytes() == bytes(range(256)) * 4
    manifest = _manifest(archive)
    assert manifest.head == await git.head(workspace)
    patch = (archive / PATCH).read_bytes()
    assert manifest.files[PATCH].sha256 == hashlib.sha256(patch).hexdigest()


async def test_untracked_files_become_a_tar_without_ignored_or_private_ones(
    workspace: Path, tmp_path: Path
) -> None:
    (workspace / "notes.md").write_text("new file")
    (workspace / "deep" / "er").mkdir(parents=True)
    (workspace / "deep" / "er" / "data.bin").write_bytes(b"\x00\xff" * 100)
    (workspace / "deep" / "link").symlink_to("er/data.bin")
    (workspace / "build.log").write_text("ignored by .gitignore")
    (workspace / ".rewind").mkdir()
    (workspace / ".rewind" / "output").write_text("agent output, kept elsewhere")
    archive = tmp_path / "archive"
    assert await archive_changes(workspace, archive)
    assert sorted(p.name for p in archive.iterdir()) == [MANIFEST, UNTRACKED]
    with tarfile.open(fileobj=io.BytesIO((archive / UNTRACKED).read_bytes())) as tar:
        members = {member.name: member for member in tar.getmembers()}
        assert sorted(members) == ["deep/er/data.bin", "deep/link", "notes.md"]
        assert members["deep/link"].issym() and members["deep/link"].linkname == "er/data.bin"
        data = tar.extractfile("deep/er/data.bin")
        assert data is not None and data.read() == b"\x00\xff" * 100


async def test_commits_nobody_pushed_become_a_bundle(workspace: Path, tmp_path: Path) -> None:
    new = commit(workspace, {"feature.py": "x = 1\n"}, "agent's commit")
    archive = tmp_path / "archive"
    assert await archive_changes(workspace, archive)
    assert sorted(p.name for p in archive.iterdir()) == [COMMITS, MANIFEST]
    replay = await _fresh_clone_at_head(workspace.parent.parent / "prepared", tmp_path / "r")
    plain_git(replay, "fetch", "-q", str(archive / COMMITS), "HEAD")
    assert plain_git(replay, "rev-parse", "FETCH_HEAD") == new


async def test_no_changes_writes_nothing(workspace: Path, tmp_path: Path) -> None:
    (workspace / "build.log").write_text("ignored")
    archive = tmp_path / "archive" / "job-1"
    assert not await archive_changes(workspace, archive)
    assert not (tmp_path / "archive").exists()


async def test_not_a_repository_or_gone_writes_nothing(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "x").write_text("x")
    assert not await archive_changes(plain, tmp_path / "a1")
    assert not await archive_changes(tmp_path / "gone", tmp_path / "a2")
    assert not (tmp_path / "a1").exists() and not (tmp_path / "a2").exists()


async def test_a_finished_archive_is_never_redone(workspace: Path, tmp_path: Path) -> None:
    """After the archive, cleanup deletes the workspace; a crash there reruns the archive
    step, which must keep the archive rather than recompute it from what is left."""
    (workspace / "README.md").write_text("work")
    archive = tmp_path / "archive"
    assert await archive_changes(workspace, archive)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in archive.iterdir()}
    (workspace / "README.md").write_text("changed after the archive")
    assert await archive_changes(workspace, archive)
    remove_tree(workspace)
    assert await archive_changes(workspace, archive)
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in archive.iterdir()} == before


async def test_an_interrupted_archive_is_redone_whole(workspace: Path, tmp_path: Path) -> None:
    (workspace / "README.md").write_text("work")
    (workspace / "new.txt").write_text("new")
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / PATCH).write_bytes(b"half a patch from the crashed attempt")
    (archive / ".untracked.tar.999.tmp").write_bytes(b"atomic_write's temp from the crash")
    assert await archive_changes(workspace, archive)
    manifest = _manifest(archive)
    assert sorted(manifest.files) == [PATCH, UNTRACKED]
    for name, entry in manifest.files.items():
        assert hashlib.sha256((archive / name).read_bytes()).hexdigest() == entry.sha256
    assert b"README.md" in (archive / PATCH).read_bytes()
    assert sorted(p.name for p in archive.iterdir()) == [PATCH, MANIFEST, UNTRACKED]
