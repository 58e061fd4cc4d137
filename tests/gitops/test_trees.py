"""remove_tree: idempotent, resumable, never follows symlinks out, copes with read-only trees,
and reports what it truly cannot remove."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.trees import (
    COPYING,
    DELETING,
    TreeRemovalError,
    remove_tree,
    stray_temps,
    temp_sibling,
)
from tests.gitops.helpers import REPO_ROOT, start_orphan, tagged_pids

NOBODY = 65534


def _fill(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f.txt").write_text("f")
    (root / "top.txt").write_text("t")


def test_missing_path_is_success(tmp_path: Path) -> None:
    remove_tree(tmp_path / "never-existed")
    remove_tree(tmp_path / "no-parent" / "either")


def test_removes_the_tree_but_nothing_its_symlinks_point_to(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _fill(outside)
    tree = tmp_path / "tree"
    _fill(tree)
    (tree / "to-dir").symlink_to(outside)
    (tree / "a" / "to-file").symlink_to(outside / "top.txt")
    (tree / "dangling").symlink_to(tmp_path / "nothing")
    remove_tree(tree)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside"]
    assert (outside / "a" / "b" / "f.txt").read_text() == "f"
    link = tmp_path / "link-to-outside"
    link.symlink_to(outside)
    remove_tree(link)
    assert not os.path.lexists(link) and (outside / "top.txt").exists()


def test_an_interrupted_removal_is_finished(tmp_path: Path) -> None:
    tree = tmp_path / "ws"
    trash = temp_sibling(tree, DELETING)
    _fill(trash)  # crash after the rename, in the middle of deleting
    remove_tree(tree)
    assert list(tmp_path.iterdir()) == []
    _fill(trash)
    _fill(tree)  # and the name was used again since
    remove_tree(tree)
    assert list(tmp_path.iterdir()) == []


def test_an_unfinished_copy_and_its_copier_go_too(tmp_path: Path) -> None:
    tree = tmp_path / "ws"
    temp = temp_sibling(tree, COPYING)
    _fill(temp)
    orphan = start_orphan(temp)
    assert stray_temps(tmp_path) == [("ws", temp)]
    remove_tree(tree)
    assert orphan.wait(timeout=5) != 0
    assert tagged_pids(temp) == []
    assert list(tmp_path.iterdir()) == []


_READ_ONLY_SCENARIO = """
import os, shutil, sys
from pathlib import Path
from service.trees import remove_tree
base, how = Path(sys.argv[1]), sys.argv[2]
tree = base / "ws"
(tree / "src" / "pkg").mkdir(parents=True)
(tree / "src" / "pkg" / "mod.py").write_text("x")
(tree / "sealed").mkdir()
(tree / "sealed" / "secret").write_text("s")
(tree / "blind").mkdir()
(tree / "blind" / "f").write_text("f")
for path in [tree / "src" / "pkg" / "mod.py", tree / "sealed" / "secret", tree / "blind" / "f"]:
    path.chmod(0o444)
(tree / "src" / "pkg").chmod(0o555)
(tree / "src").chmod(0o555)
(tree / "sealed").chmod(0o000)
(tree / "blind").chmod(0o300)
tree.chmod(0o555)
if how == "ours":
    remove_tree(tree)
else:
    shutil.rmtree(tree)
print("removed" if not os.path.lexists(tree) and not list(base.iterdir()) else "left")
"""


@pytest.fixture
def unprivileged_base() -> Iterator[Path]:
    """A directory an unprivileged user owns (tmp_path's parents are root's, mode 0700)."""
    base = Path(tempfile.mkdtemp(prefix="rewind-ro-"))
    if os.geteuid() == 0:
        os.chown(base, NOBODY, NOBODY)
    yield base
    subprocess.run(["chmod", "-R", "u+rwx", str(base)], check=False)
    shutil.rmtree(base)


def _as_unprivileged(base: Path, how: str) -> subprocess.CompletedProcess[str]:
    """Root ignores file modes, so as root the scenario runs as nobody (setpriv)."""
    argv = [sys.executable, "-c", _READ_ONLY_SCENARIO, str(base), how]
    if os.geteuid() == 0:
        argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]
    return subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, check=False)


def test_read_only_and_unsearchable_directories_are_removed(unprivileged_base: Path) -> None:
    result = _as_unprivileged(unprivileged_base, "ours")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "removed"


def test_a_plain_rmtree_is_caught_on_the_same_tree(unprivileged_base: Path) -> None:
    """Broken variant: shutil.rmtree without fixing modes fails on the same tree."""
    result = _as_unprivileged(unprivileged_base, "naive")
    assert result.returncode != 0
    assert "PermissionError" in result.stderr


@pytest.fixture
def immutable_file(tmp_path: Path) -> Iterator[Path]:
    """A file even root cannot unlink (chattr +i): a real EPERM."""
    tree = tmp_path / "ws"
    _fill(tree)
    locked = tree / "a" / "b" / "f.txt"
    if os.geteuid() != 0:
        pytest.skip("chattr +i needs root (CAP_LINUX_IMMUTABLE)")
    chattr = subprocess.run(["chattr", "+i", str(locked)], capture_output=True, check=False)
    if chattr.returncode != 0:
        pytest.skip("this filesystem has no immutable attribute")
    yield locked
    for candidate in (locked, temp_sibling(tree, DELETING) / "a" / "b" / "f.txt"):
        subprocess.run(["chattr", "-i", str(candidate)], capture_output=True, check=False)


def test_a_real_failure_is_reported_and_a_retry_finishes(
    tmp_path: Path, immutable_file: Path
) -> None:
    tree = tmp_path / "ws"
    with pytest.raises(TreeRemovalError) as caught:
        remove_tree(tree)
    message = str(caught.value)
    trash = temp_sibling(tree, DELETING)
    assert message == f"cannot remove {tree}: Operation not permitted: {trash}/a/b/f.txt"
    assert not tree.exists()  # the name is free; what remains waits under the trash name
    assert (trash / "a" / "b" / "f.txt").exists()
    with pytest.raises(TreeRemovalError):
        remove_tree(tree)
    subprocess.run(["chattr", "-i", str(trash / "a" / "b" / "f.txt")], check=True)
    remove_tree(tree)
    assert list(tmp_path.iterdir()) == []


def test_stray_temps_name_their_owner(tmp_path: Path) -> None:
    names = [".job-1.copying", ".job-2.deleting", ".app.clone", ".x.tmp", "job-3", "..deleting"]
    for name in names:
        (tmp_path / name).mkdir()
    assert [owner for owner, _ in stray_temps(tmp_path)] == ["app", "job-1", "job-2"]


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs mounted at ws/volume, holding data that is not the workspace's to delete."""
    volume = tmp_path / "ws" / "volume"
    volume.mkdir(parents=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "rewind-test", str(volume)], capture_output=True, check=False
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount here: {mount.stderr.decode().strip()}")
    (volume / "precious").write_text("someone else's data")
    yield volume
    subprocess.run(["umount", str(volume)], capture_output=True, check=False)


def test_a_tree_with_a_mount_inside_is_refused_untouched(tmp_path: Path, mounted: Path) -> None:
    tree = tmp_path / "ws"
    (tree / "own.txt").write_text("x")
    with pytest.raises(TreeRemovalError, match="a filesystem is mounted inside"):
        remove_tree(tree)
    assert (mounted / "precious").read_text() == "someone else's data"
    assert (tree / "own.txt").exists()
    with pytest.raises(TreeRemovalError, match="Device or resource busy"):
        remove_tree(mounted)  # a mount point itself cannot be renamed away
    subprocess.run(["umount", str(mounted)], check=True)
    remove_tree(tree)
    assert list(tmp_path.iterdir()) == []


def test_a_plain_rmtree_empties_the_mounted_filesystem(tmp_path: Path, mounted: Path) -> None:
    """Broken variant: shutil.rmtree descends into the mount and deletes what it holds."""
    with pytest.raises(OSError):
        shutil.rmtree(tmp_path / "ws")
    assert not (mounted / "precious").exists()
