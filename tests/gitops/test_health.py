"""check_health names the damage that makes a registered clone unusable, and only that."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from service import git
from service.archive import archive_changes
from tests.gitops.helpers import commit, make_upstream
from tests.gitops.helpers import git as plain_git

pytestmark = pytest.mark.anyio


@pytest.fixture
async def clone(tmp_path: Path) -> Path:
    make_upstream(tmp_path / "up")
    commit(tmp_path / "up", {"docs/guide.md": "guide\n"})
    dest = tmp_path / "clone"
    await git.clone(f"file://{tmp_path / 'up'}", dest)  # file:// transfers a pack
    assert await git.check_health(dest) is None
    return dest


def _loose_object(repo: Path, rev: str) -> Path:
    oid = plain_git(repo, "rev-parse", rev)
    return repo / ".git" / "objects" / oid[:2] / oid[2:]


def _overwrite(path: Path, data: bytes) -> None:
    path.chmod(0o644)
    path.write_bytes(data)


async def test_missing_directory_and_plain_file(tmp_path: Path) -> None:
    assert await git.check_health(tmp_path / "gone") == f"{tmp_path / 'gone'} is missing"
    (tmp_path / "file").write_text("x")
    assert "is not a directory" in str(await git.check_health(tmp_path / "file"))


async def test_deleted_head_or_git_dir(clone: Path) -> None:
    (clone / ".git" / "HEAD").unlink()
    assert "is not a git repository" in str(await git.check_health(clone))
    subprocess.run(["rm", "-rf", str(clone / ".git")], check=True)
    assert "is not a git repository" in str(await git.check_health(clone))


async def test_head_pointing_at_a_missing_commit(clone: Path) -> None:
    (clone / ".git" / "refs" / "heads" / "main").write_text("0" * 40 + "\n")
    (clone / ".git" / "packed-refs").unlink(missing_ok=True)
    assert "HEAD does not name a readable commit" in str(await git.check_health(clone))


@pytest.mark.parametrize(("rev", "meaning"), [("HEAD", "commit"), ("HEAD^{tree}", "trees")])
async def test_corrupt_loose_object(tmp_path: Path, rev: str, meaning: str) -> None:
    repo = tmp_path / "repo"
    make_upstream(repo)  # commits leave loose objects
    _overwrite(_loose_object(repo, rev), b"x\x9c garbage, not zlib")
    assert meaning in str(await git.check_health(repo))


async def test_corrupt_object_inside_a_pack(clone: Path) -> None:
    tree = plain_git(clone, "rev-parse", "HEAD:docs")
    (index,) = (clone / ".git" / "objects" / "pack").glob("*.idx")
    for line in plain_git(clone, "verify-pack", "-v", str(index)).splitlines():
        fields = line.split()
        if fields and fields[0] == tree:
            size_in_pack, offset = int(fields[3]), int(fields[4])
            break
    else:
        pytest.fail("tree not in the pack")
    pack = index.with_suffix(".pack")
    data = bytearray(pack.read_bytes())
    for at in range(offset + 2, offset + size_in_pack):
        data[at] ^= 0x55
    _overwrite(pack, bytes(data))
    assert "HEAD's trees are damaged" in str(await git.check_health(clone))


async def test_corrupt_index(clone: Path) -> None:
    index = clone / ".git" / "index"
    data = bytearray(index.read_bytes())
    data[len(data) // 2] ^= 0xFF
    _overwrite(index, bytes(data))
    assert "the index is damaged" in str(await git.check_health(clone))


async def _is_repository_by_discovery(path: Path) -> bool:
    """Broken variant: ask git whether `path` is in a work tree, letting it search upwards."""
    result = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "--is-inside-work-tree"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() == "true"


async def _assert_not_taken_for_a_repository(is_repository: object, inner: Path) -> None:
    assert callable(is_repository)
    assert not await is_repository(inner), f"{inner} taken for a repository"


async def test_a_plain_directory_inside_a_checkout_is_not_a_repository(tmp_path: Path) -> None:
    """`make run` keeps ./data inside rewind's own checkout: a workspace that lost its .git
    must not be read as part of that checkout (status, diff, archive, health)."""
    outer = tmp_path / "checkout"
    make_upstream(outer)
    inner = outer / "data" / "workspaces" / "job-1"
    inner.mkdir(parents=True)
    (inner / "work.txt").write_text("agent output")
    await _assert_not_taken_for_a_repository(git.is_repository, inner)
    assert "is not a git repository" in str(await git.check_health(inner))
    assert not await archive_changes(inner, tmp_path / "archive")  # nothing read, nothing kept
    (inner / ".git").mkdir()  # an empty .git directory is no repository either
    await _assert_not_taken_for_a_repository(git.is_repository, inner)
    with pytest.raises(AssertionError):
        await _assert_not_taken_for_a_repository(_is_repository_by_discovery, inner)
